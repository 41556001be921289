// The target flushes its image in the background during pre-copy, one flush
// at a time, so the flush at cut-over (while the VM is frozen) has only the
// tail to write. Without it that one flush is most of the cut-over's downtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, fillImage } from '../helpers/migration-rig.ts';

async function run(backgroundFlushBytes: number) {
  // 50 Mbit/s: the pre-copy's 5 MiB take most of a second, so it cannot outrun the flushes.
  const rig = buildRig({ algorithm: 'hybrid', size: 8 * 1024 * 1024, seed: 4, backgroundFlushBytes, bandwidthBps: 50e6 });
  await fillImage(rig.srcImage, 4);
  const flushes: Array<{ phase: string }> = [];
  let running = 0;
  let maxRunning = 0;
  const inner = rig.tgtImage.flush.bind(rig.tgtImage);
  rig.tgtImage.flush = async () => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    flushes.push({ phase: rig.target.status().phase });
    await new Promise((r) => setTimeout(r, 5));
    try {
      return await inner();
    } finally {
      running--;
    }
  };
  await rig.start();
  const report = await rig.source.run();
  rig.srcCh.close();
  rig.tgtCh.close();
  return { report, flushes, maxRunning };
}

test('pre-copy flushes the target image in the background, one flush at a time', async () => {
  const { report, flushes, maxRunning } = await run(1 << 20);
  assert.equal(report.verified, true);
  const inPrecopy = flushes.filter((f) => f.phase === 'precopy').length;
  // About 5 MiB of data (a third of the image is holes) at one flush per MiB.
  assert.ok(inPrecopy >= 3, `background flushes during pre-copy: ${inPrecopy}`);
  assert.equal(maxRunning, 1, 'never two flushes at once');
});

test('backgroundFlushBytes 0 turns it off: the image is flushed at cut-over and at the end only', async () => {
  const { report, flushes } = await run(0);
  assert.equal(report.verified, true);
  assert.equal(flushes.filter((f) => f.phase === 'precopy').length, 0);
  assert.ok(flushes.length >= 1);
});
