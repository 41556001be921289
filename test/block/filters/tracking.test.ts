// The source's tracking filter: dirty reports, area heat and per-block read heat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../../src/block/memory.ts';
import { TrackingDisk } from '../../../src/block/filters/tracking.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

// Heat on two time scales (heat-map.ts): at age 0 a count of n reads n × (1 + 60 s / 1 h).
const both = (n: number) => n * (1 + 60_000 / 3_600_000);
const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);

test('reads heat their area once per request and every block they touch; writes dirty blocks and heat areas', async () => {
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => 0 });
  const dirty: Array<[number, number]> = [];
  t.onDirty((a, b) => dirty.push([a, b]));
  const buf = Buffer.alloc(8 * KiB);
  for (let i = 0; i < 3; i++) await t.read(MiB + 64 * KiB, buf); // block 17
  await t.read(MiB + 120 * KiB, Buffer.alloc(16 * KiB)); // blocks 17 and 18
  await t.write(3 * MiB, Buffer.alloc(128 * KiB)); // blocks 48 and 49, whole
  await t.write(5 * MiB + 4 * KiB, Buffer.alloc(8 * KiB)); // part of block 80
  near(t.heat.reads(1, 0), both(4));
  near(t.blockHeat.reads(17, 0), both(4));
  near(t.blockHeat.reads(18, 0), both(1));
  assert.equal(t.blockHeat.reads(16, 0), 0);
  near(t.heat.writes(3, 0), both(1));
  near(t.blockHeat.writes(48, 0), both(1));
  near(t.blockHeat.writes(49, 0), both(1));
  assert.equal(t.blockHeat.reads(48, 0), 0, 'writes add no block read heat');
  near(t.heat.writes(5, 0), both(1));
  assert.equal(t.blockHeat.writes(80, 0), 0, 'a partial write is not a whole-block write');
  assert.deepEqual(dirty, [[48, 49], [80, 80]]);
});

test('a vectored write dirties and heats the blocks of all its chunks', async () => {
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => 0 });
  const dirty: Array<[number, number]> = [];
  t.onDirty((a, b) => dirty.push([a, b]));
  await t.writev(3 * MiB, [Buffer.alloc(64 * KiB), Buffer.alloc(60 * KiB), Buffer.alloc(4 * KiB)]); // blocks 48 and 49, whole
  assert.deepEqual(dirty, [[48, 49]]);
  near(t.blockHeat.writes(49, 0), both(1));
});

test('a write that covers blocks in part counts, for those blocks, as an access needing their old content', async () => {
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => 0 });
  await t.write(5 * MiB + 4 * KiB, Buffer.alloc(8 * KiB)); // inside block 80
  await t.write(6 * MiB, Buffer.alloc(8 * KiB)); // the head of block 96, aligned start
  await t.write(7 * MiB - 4 * KiB, Buffer.alloc(72 * KiB)); // the tail of 111, 112 whole, the head of 113
  near(t.blockHeat.reads(80, 0), both(1));
  near(t.blockHeat.reads(96, 0), both(1));
  near(t.blockHeat.reads(111, 0), both(1));
  near(t.blockHeat.reads(113, 0), both(1));
  assert.equal(t.blockHeat.reads(112, 0), 0, 'a whole-block write needs no old content');
  near(t.blockHeat.writes(112, 0), both(1));
});

test('heat remembers a periodic reader: after ten minutes its area still outranks one never read', async () => {
  let now = 0;
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => now });
  const buf = Buffer.alloc(64 * KiB);
  for (let run = 0; run < 3; run++) {
    now = run * 300_000; // a job every 5 minutes
    for (let b = 16; b < 32; b++) await t.read(b * 64 * KiB, buf);
  }
  now += 600_000;
  // A 60 s half-life alone leaves 2^-10 of it; the 1 h scale keeps most of the three runs.
  assert.ok(t.heat.reads(1, now) > 16 * 3 * (60_000 / 3_600_000) * 0.8, `area 1 heat ${t.heat.reads(1, now)}`);
  assert.ok(t.blockHeat.reads(20, now) > 0.03);
  assert.equal(t.heat.reads(2, now), 0);
});

test('the source sees a sequential reader and where it goes next', async () => {
  let now = 0;
  const t = new TrackingDisk(new MemoryDisk(8 * MiB), 64 * KiB, { now: () => now });
  const buf = Buffer.alloc(128 * KiB);
  for (let b = 10; b < 30; b += 2, now += 20) await t.read(b * 64 * KiB, buf);
  const next = t.streams.continuations(now, { leadMs: 0, horizonMs: 50, blockCount: 128 });
  assert.deepEqual(next.slice(0, 3), [30, 31, 32]);
});

test('a read spanning many blocks (a scan) heats its areas but no single block', async () => {
  const t = new TrackingDisk(new MemoryDisk(16 * MiB), 64 * KiB, { now: () => 0 });
  await t.read(0, Buffer.alloc(8 * MiB));
  assert.equal(t.blockHeat.size, 0);
  near(t.heat.reads(7, 0), both(1));
});

test('per-block heat is bounded', async () => {
  const t = new TrackingDisk(new MemoryDisk(16 * MiB), 4 * KiB, { now: () => 0, blockHeat: { maxEntries: 100 } });
  const buf = Buffer.alloc(4 * KiB);
  for (let b = 0; b < 1000; b++) await t.read(b * 4 * KiB, buf);
  assert.ok(t.blockHeat.size <= 100, `${t.blockHeat.size} entries`);
});
