// The trace recorder (--record-trace): FIU lines the parser reads back, one
// digest per 4 KiB of content (equal content, equal digest), zero requests as
// zero pages, .zst and .gz round trips through readTraceText, and drops
// (counted, never waited for) when the file falls behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TraceRecorder, readTraceText } from '../../src/workload/trace-recorder.ts';
import { parseFiuTrace } from '../../src/workload/fiu-trace.ts';
import { VirtualClock } from '../../src/util/clock.ts';
import { MemoryDisk } from '../../src/block/memory.ts';
import { RecordingDisk } from '../../src/block/filters/recording.ts';
import { tempDir } from '../helpers/tmp.ts';

async function recordSome(path: string, opts: { maxPendingBytes?: number } = {}) {
  const clock = new VirtualClock(5000);
  const rec = await TraceRecorder.open(path, { clock, ...opts });
  const disk = new RecordingDisk(new MemoryDisk(1 << 20), rec, () => clock.now());
  const a = Buffer.alloc(8192, 0xaa);
  a.fill(0xbb, 4096);
  await disk.write(8192, a);
  clock.advance(1.5);
  const back = Buffer.alloc(4096);
  await disk.read(12288, back);
  await disk.writeZeroes(0, 1 << 20);
  await disk.trim(4096, 4096);
  await disk.read(1000, Buffer.alloc(100));
  return rec;
}

test('records reads, writes and zeroes as FIU lines with one content digest per 4 KiB page', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 't.fiu');
  const rec = await recordSome(path);
  await rec.close();
  assert.deepEqual(rec.stats(), { recorded: 5, dropped: 0, truncated: 0 });
  const records = [...parseFiuTrace(readFileSync(path, 'utf8'))];
  assert.equal(records.length, 5);
  const [w, r, z, trim, small] = records as [typeof records[0], typeof records[0], typeof records[0], typeof records[0], typeof records[0]];
  assert.equal(w.op, 'write');
  assert.equal(w.lba, 16);
  assert.equal(w.sectors, 16);
  assert.equal(w.tsNs, 5_000_000_000n);
  assert.equal(w.digests.length, 2);
  assert.notEqual(w.digests[0], w.digests[1]);
  // The read of the second written page sees the same content: the same digest.
  assert.equal(r.op, 'read');
  assert.equal(r.tsNs, 5_001_500_000n);
  assert.deepEqual(r.digests, [w.digests[1]]);
  assert.equal(z.op, 'write');
  assert.equal(z.sectors, 2048);
  assert.equal(z.digests.length, 256);
  assert.equal(new Set(z.digests).size, 1);
  assert.deepEqual(trim.digests, [z.digests[0]]);
  // An unaligned read widens to whole sectors: 1000..1100 is sectors 1..2.
  assert.equal(small.lba, 1);
  assert.equal(small.sectors, 2);
  assert.equal(small.op, 'read');
});

test('.zst and .gz names are compressed, and readTraceText reads all three back the same', async (t) => {
  const dir = tempDir(t);
  const texts: string[] = [];
  for (const name of ['t.fiu', 't.fiu.zst', 't.fiu.gz']) {
    const path = join(dir, name);
    await (await recordSome(path)).close();
    texts.push(readTraceText(path));
  }
  assert.equal(texts[1], texts[0]);
  assert.equal(texts[2], texts[0]);
  assert.equal(gunzipSync(readFileSync(join(dir, 't.fiu.gz'))).toString(), texts[0]);
  const zst = readFileSync(join(dir, 't.fiu.zst'));
  assert.deepEqual([...zst.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd magic');
  assert.ok(zst.length < texts[0]!.length);
});

test('a file that falls behind drops requests (counted) instead of holding the VM', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'slow.fiu');
  const clock = new VirtualClock();
  const drops: number[] = [];
  // The smallest budget: two 1 MiB staging buffers, 512 pages of requests.
  const rec = await TraceRecorder.open(path, { clock, maxPendingBytes: 1024, onDrop: (n) => drops.push(n) });
  const page = Buffer.alloc(4096, 1);
  // Synchronous: the writer gets no chance to hand a buffer back, as when the file is slower than the VM.
  for (let i = 0; i < 3000; i++) rec.read(i, 0, page);
  assert.equal(rec.stats().dropped, 3000 - 512, 'what did not fit was dropped at once, not waited for');
  assert.deepEqual(drops, [1], 'one warning within 10 s');
  await rec.close();
  const s = rec.stats();
  assert.equal(s.recorded, 512);
  const text = readFileSync(path, 'utf8');
  assert.equal([...parseFiuTrace(text)].length, s.recorded);
  assert.match(text, new RegExp(`# flimcd: dropped ${s.dropped} requests`));
});

test('an unwritable trace path is a usage error naming the option', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(TraceRecorder.open(join(dir, 'no', 'such', 'dir.fiu'), { clock: new VirtualClock() }), /--record-trace: cannot write .*dir\.fiu/);
});
