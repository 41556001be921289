/**
 * The model of what the disk must contain after the workload's writes: per
 * 4 KiB page the content tag written last (0 = never written by the
 * workload). Page content is regenerated from (seed, tag, offset) (content.ts),
 * so verification stores no data: 4 bytes per page (20 GiB → 20 MiB).
 *
 * A read is checked page by page. A written page must equal the content of
 * its tag. A never-written page is compared with the base image when one is
 * given (a raw file path or any Disk), else it is counted as skipped.
 *
 * Concurrency contract (the executor keeps it): the model is updated when a
 * write completes, and the caller never has a read in flight that overlaps a
 * write in flight, nor two overlapping writes. Then every page a read returns
 * has exactly one correct value — the model's at completion — and a mismatch
 * is a real error of the disk below, never a race of the checker.
 */
import type { Disk } from '../block/disk.ts';
import { FileDisk } from '../block/file.ts';
import { UsageError, systemErrorCode } from '../errors.ts';
import { identifyPage, pageMatches, PAGE_SIZE, type PageIdentity } from './content.ts';

export interface Mismatch {
  /** Byte offset of the page. */
  offset: number;
  /** Where it was seen: a workload read, or the final verification pass. */
  during: 'read' | 'final';
  /** The tag the page should hold; 0 means "the base image's content" (or never written). */
  expectedTag: number;
  /** What the page holds instead. */
  found: PageIdentity;
}

export interface VerifyStats {
  /** Pages compared with their expected content (written pages and, with a base, unwritten ones). */
  pagesChecked: number;
  /** Never-written pages read without a base to compare with. */
  pagesSkipped: number;
  mismatches: number;
  /** The first mismatches (up to `maxRecorded`). */
  firstMismatches: Mismatch[];
}

export interface ExpectedOptions {
  /** The disk's content before the workload: a raw image file or a Disk. */
  base?: Disk | string;
  /** How many mismatches to keep details of (default 20). */
  maxRecorded?: number;
}

export class ExpectedDisk {
  readonly size: number;
  readonly seed: number;
  readonly pages: Uint32Array;
  readonly stats: VerifyStats = { pagesChecked: 0, pagesSkipped: 0, mismatches: 0, firstMismatches: [] };
  private readonly maxRecorded: number;
  private base: Disk | undefined;
  private ownsBase = false;
  private writtenPages = 0;

  private constructor(size: number, seed: number, maxRecorded: number) {
    if (size / PAGE_SIZE > 2 ** 28) throw new UsageError(`verification model: ${size} bytes is more than the 1 TiB it supports`);
    this.size = size;
    this.seed = seed >>> 0;
    this.pages = new Uint32Array(Math.ceil(size / PAGE_SIZE));
    this.maxRecorded = maxRecorded;
  }

  /** A model for a disk of `size` bytes written with content seed `seed`. Opens a base file path read-only. */
  static async create(size: number, seed: number, opts: ExpectedOptions = {}): Promise<ExpectedDisk> {
    const m = new ExpectedDisk(size, seed, opts.maxRecorded ?? 20);
    if (typeof opts.base === 'string') {
      try {
        m.base = await FileDisk.open(opts.base, { readOnly: true });
      } catch (e) {
        if (systemErrorCode(e) === 'ENOENT') throw new UsageError(`base image ${opts.base} does not exist`);
        throw e;
      }
      m.ownsBase = true;
    } else {
      m.base = opts.base;
    }
    return m;
  }

  get hasBase(): boolean {
    return this.base !== undefined;
  }

  /** Pages the workload has written at least once. */
  get pagesWritten(): number {
    return this.writtenPages;
  }

  tagAt(offset: number): number {
    return this.pages[Math.floor(offset / PAGE_SIZE)] ?? 0;
  }

  /** A write of `tag` over [offset, offset + length) completed (page-aligned). */
  recordWrite(offset: number, length: number, tag: number): void {
    const first = offset / PAGE_SIZE;
    const end = first + length / PAGE_SIZE;
    for (let p = first; p < end; p++) {
      if (this.pages[p] === 0) this.writtenPages++;
      this.pages[p] = tag;
    }
  }

  /**
   * Checks data read at `offset` (page-aligned). Returns the number of
   * mismatching pages (also added to stats).
   */
  async check(offset: number, data: Uint8Array, during: 'read' | 'final' = 'read'): Promise<number> {
    const first = offset / PAGE_SIZE;
    const n = data.length / PAGE_SIZE;
    let bad = 0;
    let unwritten = 0;
    for (let i = 0; i < n; i++) {
      const tag = this.pages[first + i]!;
      if (tag === 0) {
        unwritten++;
        continue;
      }
      this.stats.pagesChecked++;
      if (!pageMatches(this.seed, tag, offset + i * PAGE_SIZE, data, i * PAGE_SIZE)) {
        bad++;
        this.record(offset + i * PAGE_SIZE, during, tag, data, i * PAGE_SIZE);
      }
    }
    if (unwritten === 0) return bad;
    const base = this.base;
    const baseEnd = base ? Math.min(base.size, offset + data.length) : offset;
    if (!base || baseEnd <= offset) {
      this.stats.pagesSkipped += unwritten;
      return bad;
    }
    const ref = Buffer.allocUnsafe(baseEnd - offset);
    await base.read(offset, ref);
    for (let i = 0; i < n; i++) {
      if (this.pages[first + i] !== 0) continue;
      const at = i * PAGE_SIZE;
      if (at + PAGE_SIZE > ref.length) {
        this.stats.pagesSkipped++;
        continue;
      }
      // A write may have landed on this page while the base was read; the model says so now.
      if (this.pages[first + i] !== 0) continue;
      this.stats.pagesChecked++;
      if (!Buffer.from(data.buffer, data.byteOffset + at, PAGE_SIZE).equals(ref.subarray(at, at + PAGE_SIZE))) {
        bad++;
        this.record(offset + at, during, 0, data, at);
      }
    }
    return bad;
  }

  /** Page-aligned ranges (≤ maxLength each) of pages ever written, in order. */
  *writtenRanges(maxLength = 1 << 20): Generator<{ offset: number; length: number }> {
    const maxPages = Math.max(1, Math.floor(maxLength / PAGE_SIZE));
    const pages = this.pages;
    let p = 0;
    while (p < pages.length) {
      if (pages[p] === 0) {
        p++;
        continue;
      }
      const start = p;
      while (p < pages.length && pages[p] !== 0 && p - start < maxPages) p++;
      yield { offset: start * PAGE_SIZE, length: (p - start) * PAGE_SIZE };
    }
  }

  async close(): Promise<void> {
    if (this.ownsBase) await this.base?.close();
    this.base = undefined;
  }

  private record(offset: number, during: 'read' | 'final', expectedTag: number, data: Uint8Array, at: number): void {
    this.stats.mismatches++;
    if (this.stats.firstMismatches.length < this.maxRecorded) {
      this.stats.firstMismatches.push({ offset, during, expectedTag, found: identifyPage(data, at) });
    }
  }
}

export interface FinalVerifyResult {
  /** Bytes read back. */
  bytesRead: number;
  pagesChecked: number;
  /** Mismatching pages found by this pass. */
  mismatches: number;
  durationMs: number;
  /** Whole disk compared (a base was given) or only the pages ever written. */
  scope: 'written' | 'whole-disk';
}

/**
 * Reads back every page the workload ever wrote (and, with a base, the whole
 * disk) and compares it with the model. Mismatches go to `expected.stats`.
 */
export async function finalVerify(disk: Disk, expected: ExpectedDisk, opts: { queueDepth?: number; chunk?: number } = {}): Promise<FinalVerifyResult> {
  const t0 = performance.now();
  const chunk = opts.chunk ?? 1 << 20;
  const whole = expected.hasBase;
  const checkedBefore = expected.stats.pagesChecked;
  const badBefore = expected.stats.mismatches;
  const limit = Math.floor(disk.size / PAGE_SIZE) * PAGE_SIZE;
  function* ranges(): Generator<{ offset: number; length: number }> {
    if (!whole) {
      yield* expected.writtenRanges(chunk);
      return;
    }
    for (let off = 0; off < limit; off += chunk) yield { offset: off, length: Math.min(chunk, limit - off) };
  }
  const it = ranges();
  let bytesRead = 0;
  const worker = async () => {
    const buf = Buffer.allocUnsafe(chunk);
    for (let r = it.next(); !r.done; r = it.next()) {
      const { offset, length } = r.value;
      const view = buf.subarray(0, length);
      await disk.read(offset, view);
      bytesRead += length;
      await expected.check(offset, view, 'final');
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.queueDepth ?? 8) }, worker));
  return {
    bytesRead,
    pagesChecked: expected.stats.pagesChecked - checkedBefore,
    mismatches: expected.stats.mismatches - badBefore,
    durationMs: performance.now() - t0,
    scope: whole ? 'whole-disk' : 'written',
  };
}
