// Post-copy presence: a VM read waiting for a missing block goes on once the
// source's data is in the image, without waiting for the presence record's
// group commit (two fsyncs on every miss); the record is still queued first,
// so a VM write after the read is recorded behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../../src/block/memory.ts';
import { PostcopyDisk } from '../../../src/block/filters/postcopy.ts';
import { Bitmap } from '../../../src/util/bitmap.ts';
import { realClock } from '../../../src/util/clock.ts';

test('a read of a missing block completes when the data lands, before its presence record is durable', async () => {
  const bs = 65536;
  const image = new MemoryDisk(4 * bs);
  const records: Array<[kind: number, blocks: number[]]> = [];
  let makeDurable!: () => void;
  const durable = new Promise<void>((r) => (makeDurable = r));
  const fetched: number[] = [];
  const disk = new PostcopyDisk(image, bs, { fetch: (b) => fetched.push(...b), cancel: () => {} }, realClock, {
    persist: (kind, blocks) => {
      records.push([kind, [...blocks]]);
      return durable;
    },
  });
  const missing = new Bitmap(4);
  missing.set(2);
  disk.start(missing);
  const got = Buffer.alloc(bs);
  let readDone = false;
  const reading = disk.read(2 * bs, got).then(() => { readDone = true; });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(fetched, [2], 'the read fetched the block');
  const data = Buffer.alloc(bs, 0x42);
  let applied = false;
  const applying = disk.applyData(2, data).then((r) => { applied = r; });
  await reading;
  assert.ok(readDone && got.equals(data), 'the read has the source data while the record is not yet durable');
  assert.equal(applied, false, 'applyData itself resolves only once the record is durable');
  // A VM write now: its "written" record queues behind the block's "present" record.
  const writing = disk.write(2 * bs, Buffer.alloc(512, 0x17));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(records, [[0, [2]], [1, [2]]], 'present is recorded before written');
  makeDurable();
  await Promise.all([applying, writing]);
  assert.equal(applied, true);
  assert.equal(disk.missing.count, 0);
});

test('post-copy access counts on a hand-built case: read misses, partial-write fetches, whole-block writes', async () => {
  const bs = 4096;
  const image = new MemoryDisk(8 * bs);
  const disk = new PostcopyDisk(image, bs, {
    // The source answers every fetch at once.
    fetch: (blocks) => { for (const b of blocks) void disk.applyData(b, Buffer.alloc(bs, b)); },
    cancel: () => {},
  }, realClock);
  const missing = new Bitmap(8);
  for (const b of [1, 2, 3, 4, 5]) missing.set(b);
  disk.start(missing);
  await disk.read(0, Buffer.alloc(2 * bs)); // blocks 0 (present) and 1 (absent): 2 read, 1 miss
  await disk.write(2 * bs + 100, Buffer.alloc(200)); // block 2 absent, partial: 1 write fetch
  await disk.write(3 * bs, Buffer.alloc(bs)); // block 3 absent, whole: no fetch
  await disk.writeZeroes(4 * bs, bs + 10); // block 4 whole, block 5 partial and absent: 1 write fetch
  await disk.write(6 * bs, Buffer.alloc(10)); // block 6 present: no fetch
  const s = disk.stats;
  assert.deepEqual([s.readBlocks, s.missBlocks], [2, 1]);
  assert.deepEqual([s.writeBlocks, s.writeMissBlocks], [5, 2]);
  assert.equal(s.claimedByWrite, 2);
});
