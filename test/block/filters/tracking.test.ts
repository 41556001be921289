// The source's tracking filter: dirty reports, area heat and per-block read heat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../../src/block/memory.ts';
import { TrackingDisk } from '../../../src/block/filters/tracking.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('reads heat their area once per request and every block they touch; writes dirty blocks and heat areas', async () => {
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => 0 });
  const dirty: Array<[number, number]> = [];
  t.onDirty((a, b) => dirty.push([a, b]));
  const buf = Buffer.alloc(8 * KiB);
  for (let i = 0; i < 3; i++) await t.read(MiB + 64 * KiB, buf); // block 17
  await t.read(MiB + 120 * KiB, Buffer.alloc(16 * KiB)); // blocks 17 and 18
  await t.write(3 * MiB, Buffer.alloc(128 * KiB));
  assert.equal(t.heat.reads(1, 0), 4);
  assert.equal(t.blockHeat.reads(17, 0), 4);
  assert.equal(t.blockHeat.reads(18, 0), 1);
  assert.equal(t.blockHeat.reads(16, 0), 0);
  assert.equal(t.heat.writes(3, 0), 1);
  assert.equal(t.blockHeat.size, 2, 'writes add no block read heat');
  assert.deepEqual(dirty, [[48, 49]]);
});

test('a read spanning many blocks (a scan) heats its areas but no single block', async () => {
  const t = new TrackingDisk(new MemoryDisk(16 * MiB), 64 * KiB, { now: () => 0 });
  await t.read(0, Buffer.alloc(8 * MiB));
  assert.equal(t.blockHeat.size, 0);
  assert.equal(t.heat.reads(7, 0), 1);
});

test('per-block heat is bounded', async () => {
  const t = new TrackingDisk(new MemoryDisk(16 * MiB), 4 * KiB, { now: () => 0, blockHeat: { maxEntries: 100 } });
  const buf = Buffer.alloc(4 * KiB);
  for (let b = 0; b < 1000; b++) await t.read(b * 4 * KiB, buf);
  assert.ok(t.blockHeat.size <= 100, `${t.blockHeat.size} entries`);
});
