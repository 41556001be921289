/**
 * A pure, seeded, clock-free request generator: given concrete parameters (a
 * resolved profile, see profiles.ts) and a seed it yields requests in time
 * order on an open-loop schedule. No I/O and no timers: the executor drives it
 * on the wall clock, a simulator on a virtual one, and both see the same list.
 *
 * The model, per request (each aspect from its own PRNG stream, so the
 * sequence of operations does not depend on the rate, only their times do):
 *
 * - Arrival: Poisson (exponential gaps of mean 1/iops) or fixed-rate.
 * - Operation: read with probability `readShare`, else write.
 * - Size: drawn from the weighted `sizes` mix (multiples of 4 KiB, ≤ 1 MiB).
 * - Location: the disk is cut into areas of 1 MiB. Area popularity is Zipf:
 *   the area of rank k (1 = hottest) is chosen with weight k^-s, where s is
 *   solved so that the hottest `hotAreaShare` of areas (10 %) receive
 *   `hotWriteShare` (80 %) of the choices. Ranks are mapped to areas by a
 *   seeded permutation, so hot areas lie scattered over the disk. Writes use
 *   the write ranking; a read uses the write ranking with probability
 *   `readFollowsWriteShare` (data just written is read back) and an
 *   independent read ranking otherwise (read-mostly data: binaries, indexes).
 * - Random vs sequential: with probability `randomShare` a request goes to a
 *   random size-aligned offset inside a chosen area; otherwise it continues
 *   one of a few sequential streams per operation type. A stream starts at a
 *   random page of a chosen area and runs to the end of that area, then
 *   restarts elsewhere. Requests never cross an area boundary, so the area
 *   shares above hold exactly for every request.
 * - Duplicate writes (mail): with probability `dupWriteShare` a write copies
 *   one entry of a small pool of "messages": exactly one tracking block
 *   (`blockSize`, block-aligned) whose tag and in-area offset are fixed per
 *   entry, so every copy is byte-identical block for block (content.ts) and a
 *   block-level dedup can recognise it. The first write of an entry is new
 *   content; later ones are flagged `dup`.
 *
 * Tags: fresh writes get unique tags 1, 2, 3, …; pool entries use tags from
 * 0x80000000 up. Tag 0 means "never written by the workload".
 */
import { Prng } from './prng.ts';
import { CONTENT_PERIOD, PAGE_SIZE } from './content.ts';

export { contentFor, fillContent, pageMatches, PAGE_SIZE } from './content.ts';

/** Areas: the unit of the hot-spot model (and of the migration's heat map). */
export const AREA_SIZE = CONTENT_PERIOD;
export const DUP_TAG_BASE = 0x80000000;
const MAX_FRESH_TAG = DUP_TAG_BASE - 1;

export interface SizeWeight {
  bytes: number;
  weight: number;
}

/** Concrete numbers a generator runs on (profiles.ts resolves a named profile into these). */
export interface GeneratorParams {
  imageBytes: number;
  /** Tracking block size: duplicate writes are exactly one block, block-aligned. */
  blockSize: number;
  /** Requests per second, reads and writes together; 0 yields nothing. */
  iops: number;
  arrival: 'poisson' | 'fixed';
  readShare: number;
  randomShare: number;
  sizes: SizeWeight[];
  hotAreaShare: number;
  hotWriteShare: number;
  readFollowsWriteShare: number;
  dupWriteShare: number;
  dupPoolSize: number;
  sequentialStreams: number;
}

export interface WorkloadRequest {
  /** Scheduled arrival, ms from the start of the run. */
  atMs: number;
  op: 'read' | 'write';
  offset: number;
  length: number;
  /** Content tag of a write (0 for reads). */
  tag: number;
  /** A write copying content that already exists on the disk. */
  dup: boolean;
  /** Part of a sequential stream. */
  seq: boolean;
}

// ------------------------------------------------------------------ Zipf

/** Generalised harmonic number sum_{k=1..n} k^-s: exact head, midpoint-integral tail (rel. error < 1e-9). */
function harmonic(n: number, s: number): number {
  const head = Math.min(n, 2000);
  let sum = 0;
  for (let k = 1; k <= head; k++) sum += Math.pow(k, -s);
  if (n > head) {
    const a = head + 0.5;
    const b = n + 0.5;
    sum += Math.abs(s - 1) < 1e-12 ? Math.log(b / a) : (Math.pow(b, 1 - s) - Math.pow(a, 1 - s)) / (1 - s);
  }
  return sum;
}

/** Number of hot areas: round(share × areas), at least 1. */
export function hotAreaCount(areas: number, hotAreaShare: number): number {
  return Math.max(1, Math.min(areas, Math.round(areas * hotAreaShare)));
}

/** The Zipf exponent s for which the hottest round(hotShare·n) of n items get `hotWeight` of the mass. */
export function solveZipfExponent(n: number, hotShare: number, hotWeight: number): number {
  const hot = hotAreaCount(n, hotShare);
  if (hot >= n || hotWeight <= hot / n) return 0;
  let lo = 0;
  let hi = 1;
  const share = (s: number) => harmonic(hot, s) / harmonic(n, s);
  while (share(hi) < hotWeight && hi < 64) hi *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (share(mid) < hotWeight) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const cdfCache = new Map<string, Float64Array>();

function zipfCdf(n: number, s: number): Float64Array {
  const key = `${n}:${s}`;
  let cdf = cdfCache.get(key);
  if (!cdf) {
    cdf = new Float64Array(n);
    let acc = 0;
    for (let k = 0; k < n; k++) {
      acc += Math.pow(k + 1, -s);
      cdf[k] = acc;
    }
    for (let k = 0; k < n; k++) cdf[k]! /= acc;
    cdf[n - 1] = 1;
    if (cdfCache.size > 8) cdfCache.clear();
    cdfCache.set(key, cdf);
  }
  return cdf;
}

/** Picks areas: a Zipf rank through a seeded permutation of the areas. */
class AreaPicker {
  private readonly cdf: Float64Array;
  readonly perm: Uint32Array;

  constructor(areas: number, s: number, rng: Prng) {
    this.cdf = zipfCdf(areas, s);
    this.perm = new Uint32Array(areas);
    for (let i = 0; i < areas; i++) this.perm[i] = i;
    for (let i = areas - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = this.perm[i]!;
      this.perm[i] = this.perm[j]!;
      this.perm[j] = t;
    }
  }

  /** The probability of each area (by area index) being picked. */
  weights(): Float64Array {
    const w = new Float64Array(this.perm.length);
    for (let k = 0; k < this.cdf.length; k++) w[this.perm[k]!] = this.cdf[k]! - (k ? this.cdf[k - 1]! : 0);
    return w;
  }

  pick(u: number): number {
    const cdf = this.cdf;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return this.perm[lo]!;
  }
}

// ------------------------------------------------------------- generator

interface Stream {
  cursor: number;
  end: number;
}

interface PoolEntry {
  tag: number;
  phase: number;
  used: boolean;
}

export function validateParams(p: GeneratorParams): void {
  const bad = (m: string) => {
    throw new RangeError(`workload parameters: ${m}`);
  };
  if (!(p.imageBytes >= AREA_SIZE)) bad(`the image must hold at least one 1 MiB area (got ${p.imageBytes} bytes)`);
  if (!(p.iops >= 0) || !Number.isFinite(p.iops)) bad(`iops must be a finite number ≥ 0 (got ${p.iops})`);
  for (const [k, v] of Object.entries({ readShare: p.readShare, randomShare: p.randomShare, hotAreaShare: p.hotAreaShare, hotWriteShare: p.hotWriteShare, readFollowsWriteShare: p.readFollowsWriteShare, dupWriteShare: p.dupWriteShare })) {
    if (!(v >= 0 && v <= 1)) bad(`${k} must be in [0, 1] (got ${v})`);
  }
  if (p.sizes.length === 0) bad('sizes is empty');
  for (const s of p.sizes) {
    if (!(s.bytes > 0 && s.bytes % PAGE_SIZE === 0 && s.bytes <= AREA_SIZE)) bad(`request size ${s.bytes} must be a multiple of 4 KiB up to 1 MiB`);
    if (!(s.weight >= 0)) bad(`size weight ${s.weight} must be ≥ 0`);
  }
  if (!(p.blockSize >= PAGE_SIZE && p.blockSize <= AREA_SIZE && AREA_SIZE % p.blockSize === 0)) bad(`blockSize ${p.blockSize} must be a power of two from 4 KiB to 1 MiB`);
  if (!(p.sequentialStreams >= 1)) bad('sequentialStreams must be ≥ 1');
  if (p.dupWriteShare > 0 && !(p.dupPoolSize >= 1)) bad('dupPoolSize must be ≥ 1 when dupWriteShare > 0');
}

/**
 * An endless, deterministic request stream. `next()` returns requests in
 * non-decreasing `atMs` order (or undefined at once when iops is 0).
 */
export class RequestGenerator implements Iterable<WorkloadRequest> {
  readonly params: GeneratorParams;
  readonly seed: number;
  readonly areas: number;
  /** The Zipf exponent in use (same shape for reads and writes). */
  readonly zipfExponent: number;
  private readonly arrivalRng: Prng;
  private readonly opRng: Prng;
  private readonly locRng: Prng;
  private readonly writeAreas: AreaPicker;
  private readonly readAreas: AreaPicker;
  private readonly sizeCdf: Float64Array;
  private readonly streams: { read: Stream[]; write: Stream[] };
  private readonly pool: PoolEntry[];
  private t = 0;
  private nextTag = 1;

  constructor(params: GeneratorParams, seed: number) {
    validateParams(params);
    this.params = params;
    this.seed = seed >>> 0;
    this.areas = Math.floor(params.imageBytes / AREA_SIZE);
    this.zipfExponent = solveZipfExponent(this.areas, params.hotAreaShare, params.hotWriteShare);
    const root = new Prng(this.seed);
    const sub = () => new Prng(root.u32());
    this.arrivalRng = sub();
    this.opRng = sub();
    this.locRng = sub();
    const layoutRng = sub();
    this.writeAreas = new AreaPicker(this.areas, this.zipfExponent, layoutRng);
    this.readAreas = new AreaPicker(this.areas, this.zipfExponent, layoutRng);
    let total = 0;
    for (const s of params.sizes) total += s.weight;
    this.sizeCdf = new Float64Array(params.sizes.length);
    let acc = 0;
    params.sizes.forEach((s, i) => {
      acc += s.weight / total;
      this.sizeCdf[i] = acc;
    });
    this.sizeCdf[params.sizes.length - 1] = 1;
    const mk = () => Array.from({ length: params.sequentialStreams }, () => ({ cursor: 0, end: 0 }));
    this.streams = { read: mk(), write: mk() };
    const blocksPerArea = AREA_SIZE / params.blockSize;
    this.pool = Array.from({ length: params.dupWriteShare > 0 ? params.dupPoolSize : 0 }, (_, i) => ({
      tag: DUP_TAG_BASE + i,
      phase: layoutRng.int(blocksPerArea) * params.blockSize,
      used: false,
    }));
  }

  /** The area order by write popularity (index 0 = hottest), for tests and reports. */
  get writeHotAreas(): Uint32Array {
    return this.writeAreas.perm;
  }

  /**
   * The true probability that a read picks each area (by area index): the mix
   * of the write and the independent read popularity that next() draws from.
   */
  readAreaWeights(): Float64Array {
    const f = this.params.readFollowsWriteShare;
    const w = this.writeAreas.weights();
    const r = this.readAreas.weights();
    for (let a = 0; a < w.length; a++) w[a] = f * w[a]! + (1 - f) * r[a]!;
    return w;
  }

  /** The next request, or undefined if the workload does no I/O at all. */
  next(): WorkloadRequest | undefined {
    const p = this.params;
    if (p.iops <= 0) return undefined;
    const gap = p.arrival === 'fixed' ? 1000 / p.iops : (-Math.log(1 - this.arrivalRng.next()) * 1000) / p.iops;
    this.t += gap;
    const read = this.opRng.next() < p.readShare;
    if (!read && this.pool.length > 0 && this.opRng.next() < p.dupWriteShare) return this.dupWrite();
    const length = this.pickSize();
    const picker = read && this.locRng.next() >= p.readFollowsWriteShare ? this.readAreas : this.writeAreas;
    const sequential = this.locRng.next() >= p.randomShare;
    let offset: number;
    if (sequential) {
      const streams = read ? this.streams.read : this.streams.write;
      const s = streams[this.locRng.int(streams.length)]!;
      if (s.cursor + length > s.end) {
        const area = picker.pick(this.locRng.next());
        const pages = (AREA_SIZE - length) / PAGE_SIZE + 1;
        s.cursor = area * AREA_SIZE + this.locRng.int(pages) * PAGE_SIZE;
        s.end = (area + 1) * AREA_SIZE;
      }
      offset = s.cursor;
      s.cursor += length;
    } else {
      const area = picker.pick(this.locRng.next());
      const align = (length & (length - 1)) === 0 ? length : PAGE_SIZE;
      const slots = Math.floor((AREA_SIZE - length) / align) + 1;
      offset = area * AREA_SIZE + this.locRng.int(slots) * align;
    }
    let tag = 0;
    if (!read) {
      tag = this.nextTag;
      this.nextTag = this.nextTag >= MAX_FRESH_TAG ? 1 : this.nextTag + 1;
    }
    return { atMs: this.t, op: read ? 'read' : 'write', offset, length, tag, dup: false, seq: sequential };
  }

  [Symbol.iterator](): Iterator<WorkloadRequest> {
    return {
      next: () => {
        const r = this.next();
        return r ? { value: r, done: false } : { value: undefined, done: true };
      },
    };
  }

  private pickSize(): number {
    const sizes = this.params.sizes;
    if (sizes.length === 1) return sizes[0]!.bytes;
    const u = this.opRng.next();
    const cdf = this.sizeCdf;
    let i = 0;
    while (i < cdf.length - 1 && cdf[i]! <= u) i++;
    return sizes[i]!.bytes;
  }

  private dupWrite(): WorkloadRequest {
    const e = this.pool[this.locRng.int(this.pool.length)]!;
    const area = this.writeAreas.pick(this.locRng.next());
    const dup = e.used;
    e.used = true;
    return { atMs: this.t, op: 'write', offset: area * AREA_SIZE + e.phase, length: this.params.blockSize, tag: e.tag, dup, seq: false };
  }
}

/** Requests with atMs < untilMs, in order. */
export function* generateRequests(params: GeneratorParams, seed: number, untilMs: number): Generator<WorkloadRequest> {
  const g = new RequestGenerator(params, seed);
  for (;;) {
    const r = g.next();
    if (!r || r.atMs >= untilMs) return;
    yield r;
  }
}
