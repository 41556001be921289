// The trace recorder's worker thread (trace-recorder.ts): FIU lines,
// compression and the file, off the thread that serves the VM's I/O, and the
// digests too when the recorder has no native digest (page-digest.ts).
// Plain JavaScript so it runs as is, with or without the TypeScript loader.
//
// workerData:   { path, compression: 'none' | 'gzip' | 'zstd', digested }
// Messages in:  { type: 'batch', data: ArrayBuffer, meta: ArrayBuffer, n, used (bytes of data) }
//               meta holds n entries of 4 float64: atMs, offset, length, kind (0 read, 1 write, 2 zeroes);
//               data holds, in entry order, each read's and write's bytes, or, when `digested`,
//               its digests already (16 bytes per FIU page, canonical XXH3-128)
//               { type: 'end', dropped }
// Messages out: { type: 'open' } | { type: 'free', data, meta, recorded (lines), truncated }
//               { type: 'closed', error? }
// A batch's buffers go back ('free') only once the file stream has taken its
// text without exceeding its high-water mark, so a slow file holds the
// buffers here and the recorder drops instead of waiting.
import { Buffer } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import { createXXHash128 } from 'hash-wasm';

const PAGE = 4096;
const ZERO_LINE_BYTES = 1 << 20;
const ZERO_LINES_MAX = 64;
const HIGH_WATER = 4 << 20;
const DIGEST_BYTES = 16;
const DIGEST_HEX = 2 * DIGEST_BYTES;
// zstd level 1: the text is mostly hex digests, which level 3 packs hardly
// better (0.52 of the text against 0.53) at half the speed (121 MB/s here).
const ZSTD_LEVEL = 1;
const { path, compression, digested } = workerData;

const hasher = await createXXHash128();
const zeroDigests = new Map();
const digest = (bytes) => {
  hasher.init();
  hasher.update(bytes);
  return hasher.digest('hex');
};
const zeroDigest = (n) => {
  let d = zeroDigests.get(n);
  if (d === undefined) zeroDigests.set(n, (d = digest(new Uint8Array(n))));
  return d;
};

const file = createWriteStream(path);
let failed;
try {
  await once(file, 'open');
} catch (e) {
  parentPort.postMessage({ type: 'closed', error: `cannot write ${path}: ${e.message}` });
  process.exit(0);
}
const compressor = compression === 'zstd' ? new CompressStream({ compressionLevel: ZSTD_LEVEL }) : compression === 'gzip' ? createGzip() : undefined;
const head = compressor ?? file;
const done = compressor ? pipeline(compressor, file) : once(file, 'finish');
done.catch((e) => (failed ??= e));
head.on('error', (e) => (failed ??= e));
head.write('# flimcd --record-trace: digests are XXH3-128, one per 4 KiB page\n');
parentPort.postMessage({ type: 'open' });

// digestOf(p) is page p's digest in hex; page p covers bytes min(p * 4096, length - 1) on, at most 4096.
function line(atMs, offset, length, op, digestOf) {
  const lba = Math.floor(offset / 512);
  const sectors = Math.ceil((offset + length) / 512) - lba;
  const pages = Math.ceil(sectors / 8);
  // fiu-trace.ts expects ceil(sectors / 8) digests: one per 4 KiB of the sector-widened range.
  const digests = new Array(pages);
  for (let p = 0; p < pages; p++) digests[p] = digestOf(p);
  return `${tsNs(atMs)} 0 vm ${lba} ${sectors} ${op} 0 0 ${digests.join(' ')}\n`;
}

// Integers print as such up to 2^53; past it BigInt keeps every digit the double holds.
function tsNs(atMs) {
  const ns = Math.round(atMs * 1e6);
  return Number.isSafeInteger(ns) ? ns : BigInt(ns);
}

// A line from digests already made (`digested`): `hex` is the whole batch's digests in hex, `at` where this request's start.
function digestedLine(atMs, offset, length, op, hex, at, pages) {
  const lba = Math.floor(offset / 512);
  const sectors = Math.ceil((offset + length) / 512) - lba;
  let digests = hex.slice(at, at + DIGEST_HEX);
  for (let p = 1; p < pages; p++) digests += ' ' + hex.slice(at + p * DIGEST_HEX, at + (p + 1) * DIGEST_HEX);
  return `${tsNs(atMs)} 0 vm ${lba} ${sectors} ${op} 0 0 ${digests}\n`;
}

const pageOf = (length, p) => {
  const i = Math.min(p * PAGE, length - 1);
  return [i, Math.min(PAGE, length - i)];
};

let truncated = 0;
let queue = Promise.resolve();

async function batch(m) {
  const data = new Uint8Array(m.data);
  const meta = new Float64Array(m.meta);
  const out = [];
  let at = 0;
  // One hex conversion per batch, not per request: formatting is most of the worker's time on small requests.
  const hex = digested ? Buffer.from(m.data, 0, m.used).toString('hex') : '';
  for (let e = 0; e < m.n; e++) {
    const atMs = meta[4 * e];
    const offset = meta[4 * e + 1];
    const length = meta[4 * e + 2];
    const kind = meta[4 * e + 3];
    if (kind === 2) {
      let lines = 0;
      for (let o = 0; o < length; o += ZERO_LINE_BYTES) {
        if (lines++ === ZERO_LINES_MAX) {
          truncated++;
          break;
        }
        const n = Math.min(ZERO_LINE_BYTES, length - o);
        out.push(line(atMs, offset + o, n, 'W', (p) => zeroDigest(pageOf(n, p)[1])));
      }
    } else if (digested) {
      const pages = Math.ceil((Math.ceil((offset + length) / 512) - Math.floor(offset / 512)) / 8);
      out.push(digestedLine(atMs, offset, length, kind === 0 ? 'R' : 'W', hex, at, pages));
      at += pages * DIGEST_HEX;
    } else {
      const bytes = data.subarray(at, at + length);
      at += length;
      out.push(line(atMs, offset, length, kind === 0 ? 'R' : 'W', (p) => {
        const [i, n] = pageOf(length, p);
        return digest(bytes.subarray(i, i + n));
      }));
    }
  }
  const recorded = out.length;
  if (!failed && out.length) {
    head.write(out.join(''));
    if (head.writableLength > HIGH_WATER) await Promise.race([once(head, 'drain'), done.catch(() => {})]);
  }
  parentPort.postMessage({ type: 'free', data: m.data, meta: m.meta, recorded, truncated }, [m.data, m.meta]);
}

parentPort.on('message', (m) => {
  if (m.type === 'batch') queue = queue.then(() => batch(m));
  else if (m.type === 'end') {
    queue = queue.then(async () => {
      if (m.dropped || truncated) head.write(`# flimcd: dropped ${m.dropped} requests (file behind), truncated ${truncated} zero requests\n`);
      head.end();
      await done.catch(() => {});
      parentPort.postMessage({ type: 'closed', truncated, error: failed ? failed.message : undefined });
    });
  }
});
