// The source's post-copy push order from what its tracking filter saw (heat-handoff.ts orderedBlocks):
// a reader still running at the cut-over goes first, blocks the VM writes whole before reading them
// do not, and the hand-off stays small enough not to hold the push back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { TrackingDisk } from '../../src/block/filters/tracking.ts';
import { HANDOFF_AREAS, HANDOFF_BLOCKS, heatForHandoff, orderedBlocks } from '../../src/migrate/heat-handoff.ts';
import { Bitmap } from '../../src/util/bitmap.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BS = 64 * KiB;

/** The push's walk as the engine takes it: each block yielded is claimed (cleared) at once. */
function walk(n: number, t: TrackingDisk, hot: boolean, now: number): number[] {
  const bits = new Bitmap(n, true);
  const out: number[] = [];
  for (const b of orderedBlocks(bits, t, 'push', hot, now)) if (bits.clear(b)) out.push(b);
  return out;
}

test('the push starts where a reader in progress at the cut-over goes next, then follows the heat', async () => {
  let now = 0;
  const t = new TrackingDisk(new MemoryDisk(64 * MiB), BS, { now: () => now });
  const buf = Buffer.alloc(BS);
  for (let i = 0; i < 20; i++) await t.read(5 * MiB, buf); // area 5's first block: hot
  for (let b = 600; b < 640; b++, now += 10) await t.read(b * BS, buf); // a reader, 40 blocks over 400 ms, still going
  const order = walk(1024, t, true, now);
  assert.equal(order[0], 640, 'the reader\'s next block first');
  assert.deepEqual(order.slice(0, 5), [640, 641, 642, 643, 644]);
  assert.equal(new Set(order).size, order.length, 'each block once');
  assert.equal(order.length, 1024);
  const plain = walk(1024, t, false, now);
  assert.equal(plain[0], 0, 'without hot order: block order');
  // Once the reader has stopped for a while, it is not pushed ahead of the hot block.
  const later = walk(1024, t, true, now + 5000);
  assert.equal(later[0], 80, 'area 5\'s hot block first');
});

test('a block the VM rewrites whole before reading it back is not pushed ahead of one it only reads', async () => {
  const t = new TrackingDisk(new MemoryDisk(16 * MiB), BS, { now: () => 0 });
  const buf = Buffer.alloc(BS);
  for (let i = 0; i < 4; i++) {
    await t.write(40 * BS, buf); // rewritten whole, then read back
    await t.read(40 * BS, buf);
  }
  for (let i = 0; i < 3; i++) await t.read(200 * BS, buf); // only read
  const order = walk(256, t, true, 0);
  assert.ok(order.indexOf(200) < order.indexOf(40), `block 200 at ${order.indexOf(200)}, block 40 at ${order.indexOf(40)}`);
  assert.equal(order[0], 200);
});

test('the hand-off is bounded', async () => {
  const t = new TrackingDisk(new MemoryDisk(8 * 1024 * MiB), BS, { now: () => 0 });
  const buf = Buffer.alloc(4 * KiB);
  for (let a = 0; a < 3000; a++) await t.read(a * MiB + (a % 16) * BS, buf);
  const h = heatForHandoff(t, 0);
  assert.ok(h.reads.length <= HANDOFF_AREAS);
  assert.ok((h.blocks ?? []).length <= HANDOFF_BLOCKS);
  assert.ok(JSON.stringify(h).length < 64 * KiB, `${JSON.stringify(h).length} bytes of JSON`);
});
