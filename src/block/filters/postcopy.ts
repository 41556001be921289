import { FilterDisk } from '../filter.ts';
import { ExtentFlags, type Disk, type Extent, type WriteOptions, type ZeroOptions } from '../disk.ts';
import { Bitmap } from '../../util/bitmap.ts';
import { IoError } from '../../errors.ts';
import type { Clock } from '../../util/clock.ts';
import { SampleReservoir } from '../../util/sample-reservoir.ts';

/** How the post-copy disk asks for blocks and tells the source which blocks it no longer needs. */
export interface BlockSource {
  /** Ask for blocks on demand (ahead of all background traffic). */
  fetch(blocks: number[]): void;
  /** The VM overwrote these blocks entirely here: the source may skip them. */
  cancel(blocks: number[]): void;
}

/** A VM read of `length` bytes at `offset`, and per block it touched whether the block was present. */
export type ReadObserver = (offset: number, length: number, blocks: ReadonlyArray<[block: number, present: boolean]>) => void;

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  /** When a demand fetch for it was first issued (for miss latency), or undefined. */
  fetchedAt: number | undefined;
}

export interface PostcopyOptions {
  /**
   * How long a request waits for missing blocks (the link may be down and
   * reconnecting) before it fails with EIO. Default: no bound.
   */
  fetchTimeoutMs?: number;
  /** Called when a request gives up waiting (for a log line). */
  onFetchTimeout?: (blocks: number[], waitedMs: number) => void;
  /**
   * Makes presence records durable (with the image data written before the
   * call): kind 0 = block present, 1 = the VM wrote the block here. Awaited
   * before data from the source is acknowledged and before a VM write completes.
   */
  persist?: (kind: 0 | 1, blocks: number[]) => Promise<void>;
}

export interface PostcopyStats {
  /** Blocks touched by VM reads since post-copy began. */
  readBlocks: number;
  /** Of those, blocks absent when read. */
  missBlocks: number;
  /** Blocks the VM wrote whole here (no fetch needed). */
  claimedByWrite: number;
  /** Blocks fetched first because a partial write touched them. */
  partialWriteFetches: number;
  /** Blocks touched by VM writes (write, write-zeroes, trim) since post-copy began. */
  writeBlocks: number;
  /** Of those, blocks absent when a partial write touched them: the write waited for a fetch (report: write_fetches). */
  writeMissBlocks: number;
  /** DATA that arrived for blocks already present (dropped). */
  droppedData: number;
  fetchRequests: number;
}

/**
 * The target's VM-facing disk during post-copy. A block is either present
 * (local data is current) or missing. Every VM request first waits for any
 * block it touches that is missing or being filled; a read of a missing block
 * fetches it on demand; a whole-block write claims the block (later data from
 * the source is dropped) and a partial write fetches first. Data arriving from
 * the source is applied only to blocks still missing, so nothing the VM wrote
 * here is ever overwritten and nothing stale is ever read.
 */
export class PostcopyDisk extends FilterDisk {
  readonly missing: Bitmap;
  /** Blocks the VM wrote here after cut-over (their content ids go into verification). */
  readonly writtenHere: Bitmap;
  private readonly waiters = new Map<number, Waiter>();
  private active = false;
  private failure: Error | undefined;
  readonly stats: PostcopyStats = { readBlocks: 0, missBlocks: 0, claimedByWrite: 0, partialWriteFetches: 0, writeBlocks: 0, writeMissBlocks: 0, droppedData: 0, fetchRequests: 0 };
  readonly missLatency = new SampleReservoir();
  private completeWaiters: Array<() => void> = [];
  private readObserver: ReadObserver | undefined;

  constructor(
    inner: Disk,
    readonly unit: number,
    private readonly source: BlockSource,
    private readonly clock: Clock,
    private readonly opts: PostcopyOptions = {},
  ) {
    super(inner);
    const n = Math.ceil(inner.size / unit);
    this.missing = new Bitmap(n);
    this.writtenHere = new Bitmap(n);
  }

  get blockCount(): number {
    return this.missing.size;
  }

  get isActive(): boolean {
    return this.active;
  }

  /**
   * Sees every VM read in post-copy: its byte range and, per block it touches,
   * whether that block was present; called after any on-demand fetch for the
   * read was issued (so what the observer asks for never goes out ahead of
   * it). For prefetch.
   */
  observeReads(fn: ReadObserver | undefined): void {
    this.readObserver = fn;
  }

  /** Missing and nobody is filling it yet: worth asking the source for. */
  isWanted(block: number): boolean {
    return this.active && this.missing.get(block) && !this.waiters.has(block);
  }

  /** Post-copy begins: these blocks are stale or absent here. */
  start(missing: Bitmap): void {
    this.missing.assign(missing);
    this.active = true;
    this.checkComplete();
  }

  /** Post-copy resumes from durable state after a restart: `missing` still lacking, `written` written by the VM here. */
  restore(missing: Bitmap, written: Bitmap): void {
    this.writtenHere.assign(written);
    this.start(missing);
  }

  /** Blocks fetched on demand and still awaited (asked again on a new link after the old one's requests were lost). */
  pendingFetches(): number[] {
    const out: number[] = [];
    for (const [b, w] of this.waiters) if (w.fetchedAt !== undefined && this.missing.get(b)) out.push(b);
    return out;
  }

  /** Resolves when no block is missing (immediately before start()). */
  whenComplete(): Promise<void> {
    if (this.active && this.missing.count === 0 && this.waiters.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.completeWaiters.push(resolve));
  }

  /** Fails every waiting and future request that needs a missing block (the source is gone for good). */
  fail(err: Error): void {
    this.failure = err;
    for (const w of this.waiters.values()) w.reject(err);
  }

  /**
   * Data from the source for one block. Before post-copy it is written as is;
   * during post-copy only if the block is still missing. Returns whether it was applied.
   */
  async applyData(block: number, data: Uint8Array): Promise<boolean> {
    const offset = block * this.unit;
    if (!this.active) {
      await this.inner.write(offset, data);
      return true;
    }
    const pending = this.waiters.get(block);
    if (!this.missing.get(block)) {
      this.stats.droppedData++;
      return false;
    }
    this.missing.clear(block);
    const w = pending ?? this.newWaiter(block);
    try {
      await this.inner.write(offset, data);
    } catch (e) {
      this.missing.set(block);
      this.settle(block, w, e as Error);
      throw e;
    }
    if (w.fetchedAt !== undefined) this.missLatency.record(this.clock.now() - w.fetchedAt);
    await this.presentNow(block, w);
    return true;
  }

  /**
   * The source's data for `block` is in the image: its presence record is queued, then the
   * requests waiting for it go on without waiting for that record to be durable (a group commit,
   * two fsyncs: milliseconds on every post-copy miss). A crash before it is durable leaves the
   * block missing after a restart and the source's frozen copy, the same bytes, is fetched again.
   * A VM write to the block after this queues its own record behind this one, so a durable
   * "written" always comes with a durable "present". Resolves when the record is durable.
   */
  private presentNow(block: number, w: Waiter): Promise<void> {
    const durable = this.opts.persist?.(0, [block]);
    this.settle(block, w);
    return durable ?? Promise.resolve();
  }

  /** A range of zero blocks from the source (holes): same rules as applyData. */
  async applyZero(first: number, count: number): Promise<number> {
    if (!this.active) {
      // Pre-copy: one zeroing of the whole range (a hole of a terabyte image is one call, not one per
      // block), and none where the image already reads as zeroes (a fresh sparse target is all holes).
      const offset = first * this.unit;
      const len = Math.min(count * this.unit, this.inner.size - offset);
      if (len <= 0) return count;
      if (this.inner.capabilities.canExtents) {
        const ext = await this.inner.extents(offset, len, 1);
        const e = ext[0];
        if (e && (e.flags & ExtentFlags.ZERO) !== 0 && e.offset <= offset && e.offset + e.length >= offset + len) return count;
      }
      await this.inner.writeZeroes(offset, len);
      return count;
    }
    let applied = 0;
    for (let b = this.missing.nextSet(first); b >= 0 && b < first + count; b = this.missing.nextSet(b + 1)) {
      const len = Math.min(this.unit, this.inner.size - b * this.unit);
      const w = this.waiters.get(b) ?? this.newWaiter(b);
      this.missing.clear(b);
      try {
        await this.inner.writeZeroes(b * this.unit, len);
      } catch (e) {
        this.missing.set(b);
        this.settle(b, w, e as Error);
        throw e;
      }
      await this.presentNow(b, w);
      applied++;
    }
    return applied;
  }

  /** Reads local data without post-copy accounting (verification, once every block is present). */
  readLocal(offset: number, into: Uint8Array): Promise<void> {
    return this.inner.read(offset, into);
  }

  override async read(offset: number, into: Uint8Array): Promise<void> {
    if (this.active && into.length) await this.prepare(offset, into.length, 'read');
    return this.inner.read(offset, into);
  }

  override async write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    if (!this.active || data.length === 0) return this.inner.write(offset, data, opts);
    const claimed = await this.prepare(offset, data.length, 'write');
    return this.finishWrite(claimed, () => this.inner.write(offset, data, opts), offset, data.length);
  }

  override async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    if (!this.active || length === 0) return this.inner.trim(offset, length, opts);
    const claimed = await this.prepare(offset, length, 'write');
    return this.finishWrite(claimed, () => this.inner.trim(offset, length, opts), offset, length);
  }

  override async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    if (!this.active || length === 0) return this.inner.writeZeroes(offset, length, opts);
    const claimed = await this.prepare(offset, length, 'write');
    return this.finishWrite(claimed, () => this.inner.writeZeroes(offset, length, opts), offset, length);
  }

  override async extents(offset: number, length: number, max?: number): Promise<Extent[]> {
    // Local allocation says nothing about blocks still at the source: report those ranges as data.
    if (this.active && this.missing.count > 0) {
      const a = Math.floor(offset / this.unit);
      const b = Math.floor((offset + length - 1) / this.unit);
      const m = this.missing.nextSet(a);
      if (m >= 0 && m <= b) return [{ offset, length, flags: 0 }];
    }
    return this.inner.extents(offset, length, max);
  }

  private async finishWrite(claimed: Array<[number, Waiter]>, op: () => Promise<void>, offset: number, length: number): Promise<void> {
    const a = Math.floor(offset / this.unit);
    const z = Math.floor((offset + length - 1) / this.unit);
    try {
      const persist = this.opts.persist;
      const freshClaimed: number[] = [];
      if (persist) {
        // A present block's first write here is recorded before it lands: a block recorded as
        // written whose write never landed only costs verification a target-side id; a landed
        // write not recorded would fail verification. A claimed block is recorded after, with
        // its presence: until then a crash leaves it missing, and the source's copy replaces it.
        const freshPresent: number[] = [];
        const isClaimed = new Set(claimed.map(([b]) => b));
        for (let b = a; b <= z; b++) if (!this.writtenHere.get(b)) (isClaimed.has(b) ? freshClaimed : freshPresent).push(b);
        if (freshPresent.length) await persist(1, freshPresent);
      }
      await op();
      if (persist && claimed.length) await Promise.all([persist(0, claimed.map(([b]) => b)), freshClaimed.length ? persist(1, freshClaimed) : undefined]);
    } catch (e) {
      // The write failed: the claimed blocks' local content is unknown, so they are missing again.
      for (const [b, w] of claimed) {
        this.missing.set(b);
        this.settle(b, w, e as Error);
      }
      throw e;
    }
    for (const [b, w] of claimed) this.settle(b, w);
    for (let b = a; b <= z; b++) this.writtenHere.set(b);
  }

  /**
   * Makes the blocks of a request usable. Reads and partial writes wait for
   * missing blocks (fetching them); whole-block writes claim missing blocks
   * that nobody is filling yet. Returns the claimed blocks.
   */
  private async prepare(offset: number, length: number, kind: 'read' | 'write'): Promise<Array<[number, Waiter]>> {
    if (this.failure && this.missing.count > 0) throw new IoError(`post-copy cannot complete: ${this.failure.message}`);
    const a = Math.floor(offset / this.unit);
    const z = Math.floor((offset + length - 1) / this.unit);
    const end = offset + length;
    const toFetch: number[] = [];
    const waits: Array<Promise<void>> = [];
    const claimed: Array<[number, Waiter]> = [];
    const observed: Array<[block: number, present: boolean]> | undefined = kind === 'read' && this.readObserver ? [] : undefined;
    for (let b = a; b <= z; b++) {
      if (kind === 'read') this.stats.readBlocks++;
      else this.stats.writeBlocks++;
      const existing = this.waiters.get(b);
      const missing = this.missing.get(b);
      if (kind === 'read' && missing) this.stats.missBlocks++;
      // A partial write of an absent block waits for it as a read miss does (whether or not a fetch is already under way).
      if (kind === 'write' && missing && !(offset <= b * this.unit && end >= Math.min((b + 1) * this.unit, this.inner.size))) this.stats.writeMissBlocks++;
      observed?.push([b, !missing]);
      if (existing) {
        waits.push(existing.promise);
        continue;
      }
      if (!missing) continue;
      const bStart = b * this.unit;
      const bEnd = Math.min(bStart + this.unit, this.inner.size);
      if (kind === 'write' && offset <= bStart && end >= bEnd) {
        this.missing.clear(b);
        claimed.push([b, this.newWaiter(b)]);
        this.stats.claimedByWrite++;
        continue;
      }
      if (kind === 'write') this.stats.partialWriteFetches++;
      const w = this.newWaiter(b);
      w.fetchedAt = this.clock.now();
      toFetch.push(b);
      waits.push(w.promise);
    }
    if (toFetch.length) {
      this.stats.fetchRequests++;
      this.source.fetch(toFetch);
    }
    if (claimed.length) this.source.cancel(claimed.map(([b]) => b));
    if (observed) this.readObserver?.(offset, length, observed);
    if (waits.length) {
      try {
        await this.bounded(Promise.all(waits), a, z);
      } catch (e) {
        for (const [b, w] of claimed) {
          this.missing.set(b);
          this.settle(b, w, e as Error);
        }
        throw e;
      }
      // A block can have become missing again only through a failed write; re-check once.
      if (kind === 'read') for (let b = a; b <= z; b++) if (this.missing.get(b)) return this.prepare(offset, length, kind);
    }
    return claimed;
  }

  /** Waits for missing blocks at most fetchTimeoutMs; then the request fails with EIO (the fetch itself stays pending). */
  private bounded(p: Promise<unknown>, a: number, z: number): Promise<unknown> {
    const ms = this.opts.fetchTimeoutMs;
    if (ms === undefined || !Number.isFinite(ms)) return p;
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimer(ms, () => {
        const blocks: number[] = [];
        for (let b = a; b <= z; b++) if (this.missing.get(b) || this.waiters.has(b)) blocks.push(b);
        this.opts.onFetchTimeout?.(blocks, ms);
        reject(new IoError(`block${blocks.length === 1 ? '' : 's'} ${blocks.join(',')} not received from the source within ${ms} ms (fetch timeout; is the link down?)`));
      });
      p.then((v) => { timer.cancel(); resolve(v); }, (e) => { timer.cancel(); reject(e as Error); });
    });
  }

  private newWaiter(block: number): Waiter {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // rejections are delivered to the requests that await it
    const w: Waiter = { promise, resolve, reject, fetchedAt: undefined };
    this.waiters.set(block, w);
    return w;
  }

  private settle(block: number, w: Waiter, err?: Error): void {
    if (this.waiters.get(block) === w) this.waiters.delete(block);
    if (err) w.reject(err);
    else w.resolve();
    this.checkComplete();
  }

  private checkComplete(): void {
    if (this.active && this.missing.count === 0 && this.waiters.size === 0) for (const f of this.completeWaiters.splice(0)) f();
  }
}
