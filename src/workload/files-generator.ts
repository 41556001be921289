/**
 * The `files` profile: a guest that works on files, not on i.i.d. blocks.
 * The Zipf profiles (profiles.ts) read uniformly inside hot areas; real
 * guests read files front to back, re-run the same jobs, read what they just
 * wrote, and come in bursts (issue 18). This generator has those four
 * properties and nothing tuned to an algorithm: every number below is a
 * plain guess at "a small server", written down before any migration ran on
 * it, and none was changed after looking at a result.
 *
 * Layout (seeded): files are laid out one after another from offset 0, each
 * 4 KiB aligned, with a gap of 0-3 pages between them (free space left by
 * deletions), until FILL of the image is used or MAX_FILES exist. Sizes are
 * drawn from FILE_SIZES, a coarse version of the measured shape of file
 * systems (most files small, most bytes in large files).
 *
 * Activities, merged in time order (a small heap, one entry per activity):
 * - JOBS periodic jobs (backups, indexers, builds): job j owns a run of
 *   consecutive files (a directory) of about JOB_SET_SHARE of the image, at
 *   most JOB_SET_MAX bytes. Every period (JOB_PERIOD_MS range, seeded per
 *   job; the first run at a random phase within one period) it reads every
 *   file of its set front to back in CHUNK requests at JOB_RATE of the link,
 *   then writes an output of JOB_OUTPUT_SHARE of what it read, sequentially,
 *   over the same output file every run (the job's own region: the file
 *   after its set).
 * - interactive bursts: on for Exp(BURST_ON_MS), off for Exp(BURST_OFF_MS).
 *   While on, sessions at BURST_IOPS: a file picked by Zipf (s = ZIPF_S)
 *   over all files is read whole, front to back; with WRITE_SHARE it is
 *   then appended to or rewritten in place (APPEND_BYTES at its end, or the
 *   whole file), and with REREAD_SHARE what was written is read back.
 * Rates that move bytes are a share of the link (as the other profiles are
 * pinned to it), so the profile scales with the link it is simulated over.
 */
import type { WorkloadRequest } from './generator.ts';
import { Prng } from './prng.ts';
import { PAGE_SIZE } from './content.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

export const FILES_PROFILE = {
  /** Share of the image the files use. */
  FILL: 0.6,
  /** Bound on the layout's memory (two numbers per file). */
  MAX_FILES: 200_000,
  /** File sizes (weight): most files small, most bytes in the large ones. */
  FILE_SIZES: [
    { bytes: 4 * KiB, weight: 0.35 }, { bytes: 16 * KiB, weight: 0.25 }, { bytes: 64 * KiB, weight: 0.2 },
    { bytes: 256 * KiB, weight: 0.12 }, { bytes: 1 * MiB, weight: 0.06 }, { bytes: 8 * MiB, weight: 0.02 },
  ],
  /** Request size when a file is read or written front to back. */
  CHUNK: 128 * KiB,
  JOBS: 4,
  JOB_SET_SHARE: 0.02,
  JOB_SET_MAX: 512 * MiB,
  /** A job's period is drawn uniformly from this range (ms). */
  JOB_PERIOD_MS: [120_000, 600_000] as const,
  /** A job streams at this share of the link's bytes per second. */
  JOB_RATE: 1,
  JOB_OUTPUT_SHARE: 0.1,
  BURST_ON_MS: 5_000,
  BURST_OFF_MS: 15_000,
  /** File sessions per second while a burst is on, per 100 Mbit/s of link. */
  BURST_SESSIONS_PER_100MBIT: 20,
  ZIPF_S: 1.0,
  WRITE_SHARE: 0.3,
  APPEND_BYTES: 8 * KiB,
  /** Of the writes, the share that rewrites the whole file (the rest append). */
  REWRITE_SHARE: 0.3,
  REREAD_SHARE: 0.5,
} as const;

export interface FilesParams {
  imageBytes: number;
  linkBitsPerSecond: number;
  seed: number;
}

/** One request of an activity, before it gets its time. */
interface Step {
  offset: number;
  length: number;
  op: 'read' | 'write';
  tag: number;
}

interface Activity {
  /** Next request time (ms). */
  at: number;
  /**
   * The request due at `at` (and moves `at` on); null when the activity only
   * moved `at` later (ask again in time order); undefined when it has nothing more.
   */
  step(): WorkloadRequest | null | undefined;
}

/** The `files` profile as a request source (the executor's and the simulator's RequestSource). */
export class FilesGenerator {
  private readonly rng: Prng;
  private readonly offsets: Float64Array;
  private readonly sizes: Float64Array;
  private readonly count: number;
  private readonly activities: Activity[] = [];
  private readonly linkBytesPerMs: number;
  private readonly zipfCdf: Float64Array;
  private tagSeq = 1;

  constructor(private readonly p: FilesParams) {
    if (!(p.imageBytes >= 64 * PAGE_SIZE)) throw new RangeError('the files profile needs an image of at least 256 KiB');
    if (!(p.linkBitsPerSecond > 0)) throw new RangeError('the files profile needs a positive link rate');
    this.rng = new Prng(p.seed);
    this.linkBytesPerMs = p.linkBitsPerSecond / 8 / 1000;
    const F = FILES_PROFILE;
    const offsets: number[] = [];
    const sizes: number[] = [];
    const limit = Math.floor(p.imageBytes * F.FILL);
    let at = 0;
    const total = F.FILE_SIZES.reduce((s, x) => s + x.weight, 0);
    while (offsets.length < F.MAX_FILES) {
      let r = this.rng.next() * total;
      let size: number = F.FILE_SIZES[0].bytes;
      for (const x of F.FILE_SIZES) {
        if (r < x.weight) { size = x.bytes; break; }
        r -= x.weight;
      }
      // A file's own size varies around its class (a quarter either way), in whole pages.
      size = Math.max(PAGE_SIZE, Math.round((size * (0.75 + 0.5 * this.rng.next())) / PAGE_SIZE) * PAGE_SIZE);
      if (at + size > limit) break;
      offsets.push(at);
      sizes.push(size);
      at += size + this.rng.int(4) * PAGE_SIZE;
    }
    this.count = offsets.length;
    this.offsets = Float64Array.from(offsets);
    this.sizes = Float64Array.from(sizes);
    // Zipf over files, in a random order (popularity is not layout order).
    const weights = new Float64Array(this.count);
    for (let i = 0; i < this.count; i++) weights[i] = Math.pow(i + 1, -F.ZIPF_S);
    for (let i = this.count - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = weights[i]!;
      weights[i] = weights[j]!;
      weights[j] = t;
    }
    this.zipfCdf = new Float64Array(this.count);
    let acc = 0;
    for (let i = 0; i < this.count; i++) this.zipfCdf[i] = acc += weights[i]!;
    for (let j = 0; j < F.JOBS; j++) this.addJob();
    this.activities.push(this.bursts());
  }

  /** Files laid out (for tests and documentation). */
  get files(): number {
    return this.count;
  }

  fileAt(i: number): { offset: number; size: number } {
    return { offset: this.offsets[i]!, size: this.sizes[i]! };
  }

  next(): WorkloadRequest | undefined {
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.activities.length; i++) if (best < 0 || this.activities[i]!.at < this.activities[best]!.at) best = i;
      if (best < 0) return undefined;
      const r = this.activities[best]!.step();
      if (r) return r;
      if (r === undefined) this.activities.splice(best, 1);
    }
  }

  private tag(): number {
    this.tagSeq = (this.tagSeq + 1) >>> 0 || 1;
    return ((this.p.seed * 0x9e3779b1) ^ this.tagSeq) >>> 1 || 1;
  }

  /** Requests that go through a byte range front to back, CHUNK at a time. */
  private *sweep(offset: number, length: number, op: 'read' | 'write', tag: number): Generator<Step> {
    const end = Math.min(offset + length, this.p.imageBytes);
    for (let o = offset; o < end; o += FILES_PROFILE.CHUNK) yield { offset: o, length: Math.min(FILES_PROFILE.CHUNK, end - o), op, tag: op === 'write' ? tag : 0 };
  }

  private addJob(): void {
    const F = FILES_PROFILE;
    const rng = this.rng;
    const setBytes = Math.min(F.JOB_SET_MAX, this.p.imageBytes * F.JOB_SET_SHARE);
    const first = rng.int(this.count);
    let last = first;
    let bytes = 0;
    while (last < this.count - 1 && bytes < setBytes) bytes += this.sizes[last++]!;
    // The file after the set is the job's output (it may be the set's last file on a tiny image).
    const out = Math.min(last, this.count - 1);
    const period = F.JOB_PERIOD_MS[0] + rng.next() * (F.JOB_PERIOD_MS[1] - F.JOB_PERIOD_MS[0]);
    const rate = this.linkBytesPerMs * F.JOB_RATE;
    let runStart = rng.next() * period;
    const run = () => this.jobRun(first, last, out);
    let it = run();
    const a: Activity = {
      at: runStart,
      step: () => {
        const n = it.next();
        if (n.done) {
          runStart += period;
          a.at = Math.max(a.at, runStart);
          it = run();
          return null;
        }
        const r: WorkloadRequest = { atMs: a.at, op: n.value.op, offset: n.value.offset, length: n.value.length, tag: n.value.tag, dup: false, seq: true };
        a.at += n.value.length / rate;
        return r;
      },
    };
    this.activities.push(a);
  }

  /** One run of a job: its files read front to back, then its output written. */
  private *jobRun(first: number, last: number, out: number): Generator<Step> {
    let readBytes = 0;
    for (let f = first; f < last; f++) {
      for (const r of this.sweep(this.offsets[f]!, this.sizes[f]!, 'read', 0)) {
        readBytes += r.length;
        yield r;
      }
    }
    const outBytes = Math.min(this.sizes[out]!, Math.max(PAGE_SIZE, Math.round((readBytes * FILES_PROFILE.JOB_OUTPUT_SHARE) / PAGE_SIZE) * PAGE_SIZE));
    yield* this.sweep(this.offsets[out]!, outBytes, 'write', this.tag());
  }

  /** One interactive session: a file read whole; maybe appended to or rewritten, and maybe read back. */
  private *session(): Generator<Step> {
    const F = FILES_PROFILE;
    const f = this.pickFile();
    const off = this.offsets[f]!;
    const size = this.sizes[f]!;
    yield* this.sweep(off, size, 'read', 0);
    if (this.rng.next() >= F.WRITE_SHARE) return;
    const whole = this.rng.next() < F.REWRITE_SHARE;
    const wOff = whole ? off : Math.max(off, off + size - F.APPEND_BYTES);
    const wLen = whole ? size : Math.min(size, F.APPEND_BYTES);
    yield* this.sweep(wOff, wLen, 'write', this.tag());
    if (this.rng.next() < F.REREAD_SHARE) yield* this.sweep(wOff, wLen, 'read', 0);
  }

  private pickFile(): number {
    const u = this.rng.next() * this.zipfCdf[this.count - 1]!;
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.zipfCdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private bursts(): Activity {
    const F = FILES_PROFILE;
    const rng = this.rng;
    const exp = (mean: number) => -Math.log(1 - rng.next()) * mean;
    const sessionsPerMs = (F.BURST_SESSIONS_PER_100MBIT * (this.p.linkBitsPerSecond / 100e6)) / 1000;
    const gapInSession = 0.2; // ms between a session's requests: the guest's own I/O pace
    let onUntil = exp(F.BURST_ON_MS);
    let it: Generator<Step> | undefined;
    const a: Activity = {
      at: 0,
      step: () => {
        const n = it?.next();
        if (n && !n.done) {
          const r: WorkloadRequest = { atMs: a.at, op: n.value.op, offset: n.value.offset, length: n.value.length, tag: n.value.tag, dup: false, seq: true };
          a.at += gapInSession;
          return r;
        }
        // The next session: Poisson within a burst; past its end, the next burst after an idle gap.
        a.at += exp(1 / sessionsPerMs);
        if (a.at > onUntil) {
          a.at = onUntil + exp(F.BURST_OFF_MS);
          onUntil = a.at + exp(F.BURST_ON_MS);
        }
        it = this.session();
        return null;
      },
    };
    return a;
  }
}
