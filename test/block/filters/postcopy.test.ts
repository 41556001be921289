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
