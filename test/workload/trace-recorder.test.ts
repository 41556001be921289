// The trace recorder (--record-trace): FIU lines the parser reads back, one
// digest per 4 KiB of content (equal content, equal digest), zero requests as
// zero pages, .zst and .gz round trips through readTraceText, and drops
// (counted, never waited for) when the file falls behind. Each runs with the
// native digest on the VM's thread and with hash-wasm on the worker: both
// write the same trace, whose digests are XXH3-128 of the content.
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
import { createXXHash128 } from 'hash-wasm';
import { nativePageDigests } from '../../src/workload/page-digest.ts';

const reference = await createXXHash128();
const xxh128 = (b: Uint8Array): string => {
  reference.init();
  reference.update(b);
  return reference.digest('hex');
};

/** Where the digests are made; without the addon both are the worker's. */
const MODES = [
  { name: 'native digests', digestOnWorker: false },
  { name: 'worker digests', digestOnWorker: true },
] as const;

const ODD = Buffer.alloc(4096, 0xcc);
ODD[4095] = 0xdd;

async function recordSome(path: string, opts: { maxPendingBytes?: number; digestOnWorker?: boolean } = {}) {
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
  // 4 KiB from the middle of sector 17 span two pages of sectors: two digests, the second of the last byte.
  await disk.write(8700, ODD);
  return rec;
}

for (const mode of MODES) test(`records reads, writes and zeroes as FIU lines with one content digest per 4 KiB page (${mode.name})`, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 't.fiu');
  const rec = await recordSome(path, { digestOnWorker: mode.digestOnWorker });
  await rec.close();
  assert.deepEqual(rec.stats(), { recorded: 6, dropped: 0, truncated: 0 });
  const text = readFileSync(path, 'utf8');
  assert.equal(text.split('\n')[0], '# flimcd --record-trace: digests are XXH3-128, one per 4 KiB page');
  const records = [...parseFiuTrace(text)];
  assert.equal(records.length, 6);
  const [w, r, z, trim, small, odd] = records as [typeof records[0], typeof records[0], typeof records[0], typeof records[0], typeof records[0], typeof records[0]];
  assert.equal(w.op, 'write');
  assert.equal(w.lba, 16);
  assert.equal(w.sectors, 16);
  assert.equal(w.tsNs, 5_000_000_000n);
  assert.equal(w.digests.length, 2);
  assert.deepEqual(w.digests, [xxh128(Buffer.alloc(4096, 0xaa)), xxh128(Buffer.alloc(4096, 0xbb))]);
  // The read of the second written page sees the same content: the same digest.
  assert.equal(r.op, 'read');
  assert.equal(r.tsNs, 5_001_500_000n);
  assert.deepEqual(r.digests, [w.digests[1]]);
  assert.equal(z.op, 'write');
  assert.equal(z.sectors, 2048);
  assert.equal(z.digests.length, 256);
  assert.deepEqual(new Set(z.digests), new Set([xxh128(new Uint8Array(4096))]));
  assert.deepEqual(trim.digests, [z.digests[0]]);
  // An unaligned read widens to whole sectors: 1000..1100 is sectors 1..2.
  assert.equal(small.lba, 1);
  assert.equal(small.sectors, 2);
  assert.equal(small.op, 'read');
  assert.deepEqual(small.digests, [xxh128(new Uint8Array(100))]);
  assert.equal(odd.lba, 16);
  assert.equal(odd.sectors, 9);
  assert.deepEqual(odd.digests, [xxh128(ODD), xxh128(Buffer.alloc(1, 0xdd))]);
});

test('native and worker digests write the same trace', async (t) => {
  const dir = tempDir(t);
  const texts = [];
  for (const mode of MODES) {
    const path = join(dir, `${mode.digestOnWorker}.fiu`);
    await (await recordSome(path, { digestOnWorker: mode.digestOnWorker })).close();
    texts.push(readFileSync(path, 'utf8'));
  }
  assert.equal(texts[0], texts[1]);
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

for (const mode of MODES) test(`a file that falls behind drops requests (counted) instead of holding the VM (${mode.name})`, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'slow.fiu');
  const clock = new VirtualClock();
  const drops: number[] = [];
  // The smallest budget: two staging buffers, of 1 MiB of data (256 pages) or, digested, of 1024 requests.
  const rec = await TraceRecorder.open(path, { clock, maxPendingBytes: 1024, onDrop: (n) => drops.push(n), digestOnWorker: mode.digestOnWorker });
  const fits = nativePageDigests && !mode.digestOnWorker ? 2 * 1024 : 2 * 256;
  const page = Buffer.alloc(4096, 1);
  // Synchronous: the writer gets no chance to hand a buffer back, as when the file is slower than the VM.
  for (let i = 0; i < 3000; i++) rec.read(i, 0, page);
  assert.equal(rec.stats().dropped, 3000 - fits, 'what did not fit was dropped at once, not waited for');
  assert.deepEqual(drops, [1], 'one warning within 10 s');
  await rec.close();
  const s = rec.stats();
  assert.equal(s.recorded, fits);
  const text = readFileSync(path, 'utf8');
  assert.equal([...parseFiuTrace(text)].length, s.recorded);
  assert.match(text, new RegExp(`# flimcd: dropped ${s.dropped} requests`));
});

test('an unwritable trace path is a usage error naming the option', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(TraceRecorder.open(join(dir, 'no', 'such', 'dir.fiu'), { clock: new VirtualClock() }), /--record-trace: cannot write .*dir\.fiu/);
});
