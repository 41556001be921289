/**
 * FIU IODedup traces (SNIA iotta set 391; docs/design.md "Workloads"): a parser and
 * a replay source for the workload executor.
 *
 * Format, one request per line, whitespace separated:
 *   ts_ns pid process lba size_in_512B_sectors W|R major minor digest...
 * Digests are opaque content ids: one hex MD5 (32 digits) per 4 KiB page, or
 * in some sets one per 512-byte sector; several are written concatenated
 * (one long token) or as separate tokens; both are accepted. Which variant a
 * line uses follows from the count (pages vs sectors); a count that fits
 * neither is an error. Blank lines and lines starting with '#' are skipped.
 *
 * Replay (FiuReplay) maps each request onto an image: the byte range is
 * widened to whole 4 KiB pages (the executor's unit of content), folded into
 * the image modulo its size and clipped at its end; times are relative to
 * the first request and divided by `speed`. A write's content tag is a hash
 * of its digests, so equal digests give equal tags, and the executor's
 * content (content.ts: tag and position in the 1 MiB area) gives equal bytes
 * for equal digests written at the same in-area position. `fillFromDigest`
 * derives bytes from one digest alone, for consumers that need equal content
 * wherever it lands (e.g. a dedup replay).
 */
import { TraceFormatError } from '../errors.ts';
import type { WorkloadRequest } from './generator.ts';
import { PAGE_SIZE } from './content.ts';

export interface FiuRecord {
  /** Timestamp in ns (as in the trace). */
  tsNs: bigint;
  pid: number;
  process: string;
  /** First sector (512 bytes). */
  lba: number;
  sectors: number;
  op: 'read' | 'write';
  major: number;
  minor: number;
  /** One content id per unit (lower-case hex). */
  digests: string[];
  /** What one digest covers: a 4 KiB page or a 512-byte sector. */
  digestUnit: 'page' | 'sector';
  /** 1-based line number in the source. */
  line: number;
}

const HEX = /^[0-9a-fA-F]+$/;
const MD5_HEX = 32;

function int(tok: string, what: string, line: number): number {
  if (!/^\d+$/.test(tok)) throw new TraceFormatError(`${what} "${tok}" is not a non-negative integer`, line);
  const v = Number(tok);
  if (!Number.isSafeInteger(v)) throw new TraceFormatError(`${what} ${tok} is too large`, line);
  return v;
}

/** One line; undefined for blank and comment lines; TraceFormatError (with the line number) otherwise. */
export function parseFiuLine(text: string, line: number): FiuRecord | undefined {
  const t = text.trim();
  if (t === '' || t.startsWith('#')) return undefined;
  const f = t.split(/\s+/);
  if (f.length < 9) throw new TraceFormatError(`expected "ts_ns pid process lba sectors W|R major minor digest..." but found ${f.length} fields`, line);
  if (!/^\d+$/.test(f[0]!)) throw new TraceFormatError(`timestamp "${f[0]}" is not a non-negative integer`, line);
  const tsNs = BigInt(f[0]!);
  const pid = int(f[1]!, 'pid', line);
  const process = f[2]!;
  const lba = int(f[3]!, 'lba', line);
  const sectors = int(f[4]!, 'size', line);
  if (sectors === 0) throw new TraceFormatError('size is 0 sectors', line);
  const opTok = f[5]!.toUpperCase();
  if (opTok !== 'R' && opTok !== 'W') throw new TraceFormatError(`operation "${f[5]}" is neither W nor R`, line);
  const major = int(f[6]!, 'major', line);
  const minor = int(f[7]!, 'minor', line);
  const hex = f.slice(8).join('');
  if (!HEX.test(hex)) throw new TraceFormatError('digest is not hexadecimal', line);
  if (hex.length % MD5_HEX !== 0) throw new TraceFormatError(`digest of ${hex.length} hex digits is not a whole number of MD5s (32 each)`, line);
  const n = hex.length / MD5_HEX;
  const pages = Math.ceil(sectors / 8);
  let digestUnit: 'page' | 'sector';
  if (n === pages) digestUnit = 'page';
  else if (n === sectors) digestUnit = 'sector';
  else throw new TraceFormatError(`${n} digests for ${sectors} sectors: expected ${pages} (per 4 KiB page) or ${sectors} (per sector)`, line);
  const digests = new Array<string>(n);
  for (let i = 0; i < n; i++) digests[i] = hex.slice(i * MD5_HEX, (i + 1) * MD5_HEX).toLowerCase();
  return { tsNs, pid, process, lba, sectors, op: opTok === 'W' ? 'write' : 'read', major, minor, digests, digestUnit, line };
}

/** Every record of a trace's text (a whole file's contents or its lines). */
export function* parseFiuTrace(text: string | Iterable<string>): Generator<FiuRecord> {
  const lines = typeof text === 'string' ? text.split('\n') : text;
  let n = 0;
  for (const l of lines) {
    n++;
    const r = parseFiuLine(l, n);
    if (r) yield r;
  }
}

/** FNV-1a over the digest text, folded to a 31-bit non-zero tag (tag 0 means "never written"). */
export function digestTag(digests: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const d of digests) {
    for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x2c, 0x01000193);
  }
  return (h >>> 1) || 1;
}

/** Deterministic bytes for one content id: equal digests give equal bytes, different ones differ. */
export function fillFromDigest(digest: string, into: Uint8Array): void {
  if (!HEX.test(digest) || digest.length < 16) throw new RangeError(`"${digest}" is not a hex digest`);
  let s = (parseInt(digest.slice(0, 8), 16) ^ parseInt(digest.slice(8, 16), 16)) >>> 0;
  let i = 0;
  // splitmix32 stream seeded from the digest; the digest itself heads the data.
  for (; i < into.length && i < digest.length / 2; i++) into[i] = parseInt(digest.slice(2 * i, 2 * i + 2), 16);
  for (; i < into.length; i += 4) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    for (let k = 0; k < 4 && i + k < into.length; k++) into[i + k] = (z >>> (8 * k)) & 0xff;
  }
}

export interface FiuReplayOptions {
  imageBytes: number;
  /** Replay this many times faster than recorded (default 1). */
  speed?: number;
  /** Longest request issued; longer ones are clipped (default 1 MiB). */
  maxRequestBytes?: number;
}

/** Replays trace records as workload requests (a RequestSource for the executor). */
export class FiuReplay {
  private readonly it: Iterator<FiuRecord>;
  private t0: bigint | undefined;
  private lastMs = 0;
  private readonly image: number;
  private readonly speed: number;
  private readonly maxBytes: number;
  replayed = 0;

  constructor(records: Iterable<FiuRecord>, o: FiuReplayOptions) {
    this.it = records[Symbol.iterator]();
    this.image = Math.floor(o.imageBytes / PAGE_SIZE) * PAGE_SIZE;
    if (this.image <= 0) throw new RangeError('FIU replay needs an image of at least one 4 KiB page');
    this.speed = o.speed ?? 1;
    if (!(this.speed > 0)) throw new RangeError(`replay speed must be positive (got ${this.speed})`);
    this.maxBytes = Math.max(PAGE_SIZE, Math.floor((o.maxRequestBytes ?? 1 << 20) / PAGE_SIZE) * PAGE_SIZE);
  }

  next(): WorkloadRequest | undefined {
    const r = this.it.next();
    if (r.done) return undefined;
    const rec = r.value;
    this.t0 ??= rec.tsNs;
    // Out-of-order timestamps (several CPUs logging) are issued at once, never back in time.
    const atMs = Math.max(this.lastMs, Number(rec.tsNs - this.t0) / 1e6 / this.speed);
    this.lastMs = atMs;
    const start = Math.floor((rec.lba * 512) / PAGE_SIZE) * PAGE_SIZE;
    const end = Math.ceil(((rec.lba + rec.sectors) * 512) / PAGE_SIZE) * PAGE_SIZE;
    const offset = start % this.image;
    const length = Math.min(end - start, this.maxBytes, this.image - offset);
    this.replayed++;
    const write = rec.op === 'write';
    return { atMs, op: rec.op, offset, length, tag: write ? digestTag(rec.digests) : 0, dup: false, seq: false };
  }
}
