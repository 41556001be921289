import { FilterDisk } from '../filter.ts';
import type { Disk, WriteOptions, ZeroOptions } from '../disk.ts';
import { chunksLength, writeChunks } from '../writev.ts';
import { HeatMap, LONG_HALF_LIFE_MS, type HeatMapOptions } from '../../policy/heat-map.ts';
import { CoAccess, type CoAccessOptions } from '../../policy/co-access.ts';
import { ReadStreams } from '../../policy/read-streams.ts';
import { BlockSuccessors } from '../../policy/block-successors.ts';
import { ReadOrder } from '../../policy/read-order.ts';

/** Receives the blocks a completed write (or trim/zero) changed. */
export type DirtyListener = (firstBlock: number, lastBlock: number) => void;

const MAX_AREAS_PER_REQUEST = 64;
/** Reads spanning more blocks than this (a backup, a scan) say nothing about which blocks are hot. */
const MAX_BLOCKS_PER_READ = 64;

export interface TrackingOptions {
  /** Bytes per heat-map area (default 1 MiB; at least one block). */
  areaBytes?: number;
  /** Milliseconds clock for the heat map's decay (default performance.now). */
  now?: () => number;
  heat?: HeatMapOptions;
  /** Per-block read heat (default: as `heat`, at most 65 536 blocks kept). */
  blockHeat?: HeatMapOptions;
  coAccess?: CoAccessOptions;
}

/**
 * Source-side filter on the VM's I/O path: reports which blocks each write
 * changed, after the write completed (so a block cleared before it is read for
 * sending, and written during that read, is always reported again), and keeps
 * the heat map (decayed read/write counts per area, sparse and bounded), a
 * per-block read heat (same map, keyed by block: which blocks of an area are
 * the read ones, e.g. the hot files in it) and which areas are read together. O(1) amortised per request (a request spans
 * at most a few areas).
 *
 * Writes: a block the VM writes whole costs the target nothing (the write
 * claims it, no fetch), and reads of it afterwards read what the VM wrote.
 * Such writes also go into the block map's write counter (the push discounts
 * the block's reads by them: heat-handoff.ts). A block the VM writes only in
 * part (a 4 KiB append, an inode table or bitmap update) costs the target
 * what a read costs: the write waits for the block's old content. So the
 * block map's read counter counts both: it is the block's accesses that
 * need its old content, and the push sends the blocks the VM keeps writing
 * in part as early as those it keeps reading. The area's write heat counts
 * every write, as pre-copy's order needs.
 */
export class TrackingDisk extends FilterDisk {
  private listener: DirtyListener | undefined;
  readonly heat: HeatMap;
  /** Per tracking block: accesses that need its old content (reads and partial writes) as `reads`, whole-block writes as `writes` (sparse, bounded: only the hottest recent blocks). */
  readonly blockHeat: HeatMap;
  readonly coAccess: CoAccess;
  /** The sequential readers in progress: the post-copy push starts ahead of them (read-streams.ts). */
  readonly streams = new ReadStreams();
  /** Which block the VM reads right after which (block-successors.ts): handed to the target's prefetch. */
  readonly successors = new BlockSuccessors();
  /** The order blocks were first read in: a job re-reading them is followed by the push (read-order.ts). */
  readonly readOrder = new ReadOrder();
  readonly areaSize: number;
  private readonly now: () => number;

  constructor(inner: Disk, readonly trackBlockSize: number, o: TrackingOptions = {}) {
    super(inner);
    // An area is a whole number of blocks, so block → area is a division.
    const blocks = Math.max(1, Math.round((o.areaBytes ?? 1024 * 1024) / trackBlockSize));
    this.areaSize = blocks * trackBlockSize;
    this.now = o.now ?? (() => performance.now());
    // Two time scales (heat-map.ts): the long one keeps a periodic job's read set between its runs.
    this.heat = new HeatMap({ longHalfLifeMs: LONG_HALF_LIFE_MS, ...o.heat });
    this.blockHeat = new HeatMap({ maxEntries: 65_536, longHalfLifeMs: LONG_HALF_LIFE_MS, ...o.heat, ...o.blockHeat });
    this.coAccess = new CoAccess(o.coAccess);
  }

  /** Blocks per heat-map area. */
  get areaBlocks(): number {
    return this.areaSize / this.trackBlockSize;
  }

  onDirty(fn: DirtyListener | undefined): void {
    this.listener = fn;
  }

  override async read(offset: number, into: Uint8Array): Promise<void> {
    await this.inner.read(offset, into);
    if (into.length) this.count(true, offset, into.length);
  }

  override async write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    await this.inner.write(offset, data, opts);
    this.dirty(offset, data.length);
  }

  override async writev(offset: number, chunks: readonly Uint8Array[], opts?: WriteOptions): Promise<void> {
    await writeChunks(this.inner, offset, chunks, opts);
    this.dirty(offset, chunksLength(chunks));
  }

  override async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    await this.inner.trim(offset, length, opts);
    this.dirty(offset, length);
  }

  override async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    await this.inner.writeZeroes(offset, length, opts);
    this.dirty(offset, length);
  }

  private dirty(offset: number, length: number): void {
    if (length === 0) return;
    this.count(false, offset, length);
    this.listener?.(Math.floor(offset / this.trackBlockSize), Math.floor((offset + length - 1) / this.trackBlockSize));
  }

  private count(read: boolean, offset: number, length: number): void {
    const a = Math.floor(offset / this.areaSize);
    const b = Math.floor((offset + length - 1) / this.areaSize);
    // A whole-disk trim or zeroing is not heat; it would only flood the map.
    if (b - a >= MAX_AREAS_PER_REQUEST) return;
    const now = this.now();
    const bs = this.trackBlockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    if (read) {
      this.streams.observe(first, last, now);
      this.successors.observe(first, last, now);
      this.readOrder.observe(first, last, now);
      if (last - first < MAX_BLOCKS_PER_READ) for (let x = first; x <= last; x++) this.blockHeat.recordRead(x, now);
      for (let i = a; i <= b; i++) {
        this.heat.recordRead(i, now);
        this.coAccess.observe(i, now);
      }
      return;
    }
    // Every write heats its areas (pre-copy sends write-hot areas last: they would be dirtied again);
    // the whole blocks it covers also go into the block map's write counter, and the blocks it covers
    // only in part into its read counter (at the target that write waits for the block, as a read does).
    for (let i = a; i <= b; i++) this.heat.recordWrite(i, now);
    const wholeFirst = Math.ceil(offset / bs);
    const wholeLast = Math.floor((offset + length) / bs) - 1;
    if (wholeLast - wholeFirst < MAX_BLOCKS_PER_READ) for (let x = wholeFirst; x <= wholeLast; x++) this.blockHeat.recordWrite(x, now);
    const headPartial = first < wholeFirst;
    if (headPartial) this.blockHeat.recordRead(first, now);
    if (last > wholeLast && !(headPartial && last === first)) this.blockHeat.recordRead(last, now);
  }
}
