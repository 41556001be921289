/**
 * A small synthetic trace in the FIU IODedup format (fiu-trace.ts), generated
 * deterministically from a seed: no real FIU trace is available offline, so
 * benchmarks replay this instead and say so. It imitates a small server's
 * disk, with the skew real traces show (not tuned to any algorithm):
 *
 * - Files (64 KiB - 1 MiB, scattered over the disk) with Zipf popularity
 *   (s = 1.1): a file read first reads the file's metadata page (in a
 *   metadata region at the start of the disk), then the file sequentially in
 *   32 KiB requests, 0.3 ms apart: sequential runs and co-accessed areas.
 * - A database region (the next 25 % of the disk) of 1 MiB areas with Zipf
 *   popularity: random 4 KiB reads and writes.
 * - A log region (the last 5 % of the disk): sequential 4-16 KiB appends,
 *   wrapping around.
 * - Operation mix: file reads 30 %, database reads 30 %, database writes 25 %,
 *   log appends 15 %; operations arrive as a Poisson process.
 * - Content: a write is new content (70 %) or one of 64 recurring contents
 *   (30 %, as duplicated data in real traces); reads carry the digest of what
 *   the page holds (written content, else an id of the original content).
 * Digests are one MD5 per 4 KiB page, concatenated.
 */
import { createHash } from 'node:crypto';
import { Prng } from './prng.ts';

export interface FiuSynthOptions {
  imageBytes: number;
  seconds: number;
  /** Operations per second (a file read is one operation of many requests). */
  opsPerSecond?: number;
  seed?: number;
}

const PAGE = 4096;
const SECTOR = 512;
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

interface ZipfSampler {
  pick(): number;
  /** Each item's probability of being picked (by item index). */
  weights(): Float64Array;
}

function zipfSampler(n: number, s: number, rng: Prng): ZipfSampler {
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let k = 0; k < n; k++) cdf[k] = acc += Math.pow(k + 1, -s);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return {
    pick: () => {
      const u = rng.next() * acc;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cdf[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return perm[lo]!;
    },
    weights: () => {
      const w = new Float64Array(n);
      for (let k = 0; k < n; k++) w[perm[k]!] = (cdf[k]! - (k ? cdf[k - 1]! : 0)) / acc;
      return w;
    },
  };
}

/** Operation mix (shares of operations, cumulative thresholds used by the generator). */
export const FIU_MIX = { fileRead: 0.3, dbRead: 0.3, dbWrite: 0.25, logAppend: 0.15 } as const;
/** Pages per file-read request (32 KiB). */
export const FIU_FILE_REQUEST_PAGES = 8;

/** Where things lie on the synthetic disk and how popular they are: drawn first from the seed. */
export interface FiuLayout {
  pages: number;
  ops: number;
  metaPages: number;
  dbFirst: number;
  dbPages: number;
  logFirst: number;
  logPages: number;
  /** Files: metadata page, first page, size in pages. */
  files: Array<{ meta: number; first: number; size: number }>;
  file: ZipfSampler;
  dbArea: ZipfSampler;
}

function fiuLayout(o: FiuSynthOptions, rng: Prng): FiuLayout {
  const pages = Math.floor(o.imageBytes / PAGE);
  if (pages < 1024) throw new RangeError('synthetic FIU trace: image must be at least 4 MiB');
  const ops = o.opsPerSecond ?? 40;
  const metaPages = Math.max(16, Math.floor(pages * 0.02));
  const dbFirst = metaPages;
  const dbPages = Math.floor(pages * 0.25);
  const logPages = Math.floor(pages * 0.05);
  const logFirst = pages - logPages;
  const fileFirst = dbFirst + dbPages;
  const filePagesSpan = logFirst - fileFirst;
  const nFiles = 256;
  const files = Array.from({ length: nFiles }, (_, i) => {
    const size = 16 * (1 + rng.int(16)); // 64 KiB .. 1 MiB in pages
    return { meta: i % metaPages, first: fileFirst + rng.int(Math.max(1, filePagesSpan - size)), size };
  });
  const file = zipfSampler(nFiles, 1.1, rng);
  const dbAreas = Math.max(1, Math.floor(dbPages / 256));
  const dbArea = zipfSampler(dbAreas, 1.1, rng);
  return { pages, ops, metaPages, dbFirst, dbPages, logFirst, logPages, files, file, dbArea };
}

/** The layout a trace with these options was generated on (for models of its true popularity). */
export function synthesizedFiuLayout(o: FiuSynthOptions): FiuLayout {
  return fiuLayout(o, new Prng(o.seed ?? 391));
}

/** The trace's lines, in time order (a few hundred per second of trace). */
export function synthesizeFiuTrace(o: FiuSynthOptions): string[] {
  const rng = new Prng(o.seed ?? 391);
  const { ops, dbFirst, dbPages, logFirst, logPages, files, file: pickFile, dbArea: pickDbArea } = fiuLayout(o, rng);
  const content = new Map<number, string>();
  let fresh = 0;
  let logCursor = 0;
  const out: string[] = [];
  const digestOf = (page: number) => content.get(page) ?? md5(`original:${page}`);
  const emit = (tMs: number, pid: number, proc: string, page: number, n: number, write: boolean) => {
    const ds: string[] = [];
    for (let p = page; p < page + n; p++) {
      if (write) {
        const d = rng.next() < 0.3 ? md5(`recurring:${rng.int(64)}`) : md5(`fresh:${fresh++}`);
        content.set(p, d);
        ds.push(d);
      } else ds.push(digestOf(p));
    }
    const ts = BigInt(Math.round(tMs * 1e6)) + 1_000_000_000n;
    out.push(`${ts} ${pid} ${proc} ${(page * PAGE) / SECTOR} ${(n * PAGE) / SECTOR} ${write ? 'W' : 'R'} 8 0 ${ds.join('')}`);
  };
  let t = 0;
  const end = o.seconds * 1000;
  for (;;) {
    t += (-Math.log(1 - rng.next()) * 1000) / ops;
    if (t >= end) break;
    const u = rng.next();
    if (u < FIU_MIX.fileRead) {
      const f = files[pickFile.pick()]!;
      emit(t, 2101, 'httpd', f.meta, 1, false);
      let tt = t + 0.3;
      for (let p = 0; p < f.size; p += FIU_FILE_REQUEST_PAGES, tt += 0.3) emit(tt, 2101, 'httpd', f.first + p, Math.min(FIU_FILE_REQUEST_PAGES, f.size - p), false);
    } else if (u < FIU_MIX.fileRead + FIU_MIX.dbRead + FIU_MIX.dbWrite) {
      const area = pickDbArea.pick();
      const page = Math.min(dbFirst + dbPages - 1, dbFirst + area * 256 + rng.int(256));
      emit(t, 3307, 'mysqld', page, 1, u >= FIU_MIX.fileRead + FIU_MIX.dbRead);
    } else {
      const n = 1 + rng.int(4);
      if (logCursor + n > logPages) logCursor = 0;
      emit(t, 411, 'syslogd', logFirst + logCursor, n, true);
      logCursor += n;
    }
  }
  // File reads' later requests can pass the next operation's time: keep the file in time order.
  const key = (l: string) => BigInt(l.slice(0, l.indexOf(' ')));
  return out.map((l, i) => ({ l, i, k: key(l) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i)).map((x) => x.l);
}
