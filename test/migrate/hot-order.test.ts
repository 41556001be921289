// Hot-area ordering in the engines: after an immediate cut-over, the push
// starts with the blocks and areas the VM read most at the source (and only with hot
// order on); the migration still verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, fillImage } from '../helpers/migration-rig.ts';

const MiB = 1 << 20;

async function pushOrderRun(hotOrder: boolean): Promise<{ firstAreas: number[]; first: number[]; verified: boolean }> {
  const rig = buildRig({ algorithm: 'postcopy', size: 16 * MiB, bandwidthBps: 400e6, delayMs: 1, seed: 4, features: { hotOrder } });
  await fillImage(rig.srcImage, 4);
  await rig.start();
  // The VM read area 13 a lot (20 reads over its 16 blocks) and area 7 a little, but always the
  // same block, 112 (both areas hold data: not every-third-MiB holes).
  const buf = Buffer.alloc(8192);
  for (let i = 0; i < 20; i++) await rig.tracking.read(13 * MiB + (i % 16) * 65536, buf);
  for (let i = 0; i < 5; i++) await rig.tracking.read(7 * MiB, buf);
  const pushed: number[] = [];
  const orig = rig.postcopy.applyData.bind(rig.postcopy);
  rig.postcopy.applyData = (block, data) => {
    if (rig.postcopy.isActive) pushed.push(block);
    return orig(block, data);
  };
  const report = await rig.source.run();
  await rig.target.result;
  rig.srcCh.close();
  rig.tgtCh.close();
  const areaOf = (b: number) => Math.floor((b * 65536) / MiB);
  return { firstAreas: [...new Set(pushed.slice(0, 32).map(areaOf))], first: pushed.slice(0, 17), verified: report.verified };
}

test('hot order pushes the read-hottest areas first; block order starts at the beginning', async () => {
  const hot = await pushOrderRun(true);
  const plain = await pushOrderRun(false);
  assert.equal(hot.verified, true);
  assert.equal(plain.verified, true);
  assert.equal(hot.first[0], 112, 'the hottest single block first: block 112, read 5 times');
  assert.deepEqual(hot.first.slice(1).map((b) => Math.floor(b / 16)), new Array(16).fill(13), 'then area 13 (20 reads), all of it');
  assert.deepEqual(hot.firstAreas, [7, 13]);
  assert.deepEqual(plain.firstAreas, [0, 1], 'block order');
});
