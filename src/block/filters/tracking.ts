import { FilterDisk } from '../filter.ts';
import type { Disk, WriteOptions, ZeroOptions } from '../disk.ts';

/** Receives the blocks a completed write (or trim/zero) changed. */
export type DirtyListener = (firstBlock: number, lastBlock: number) => void;

/**
 * Source-side filter on the VM's I/O path: reports which blocks each write
 * changed, after the write completed (so a block cleared before it is read for
 * sending, and written during that read, is always reported again), and keeps
 * per-area read and write counters for the heat map. O(1) per request.
 */
export class TrackingDisk extends FilterDisk {
  private listener: DirtyListener | undefined;
  /** Reads and writes per area (area = `areaBlocks` blocks), as plain counters; decay lives in the heat map. */
  readonly areaReads: Float64Array;
  readonly areaWrites: Float64Array;
  readonly areaSize: number;

  constructor(inner: Disk, readonly trackBlockSize: number, areaBytes = 1024 * 1024) {
    super(inner);
    this.areaSize = Math.max(areaBytes, trackBlockSize);
    const areas = Math.ceil(inner.size / this.areaSize);
    this.areaReads = new Float64Array(areas);
    this.areaWrites = new Float64Array(areas);
  }

  onDirty(fn: DirtyListener | undefined): void {
    this.listener = fn;
  }

  override async read(offset: number, into: Uint8Array): Promise<void> {
    await this.inner.read(offset, into);
    if (into.length) this.count(this.areaReads, offset, into.length);
  }

  override async write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    await this.inner.write(offset, data, opts);
    this.dirty(offset, data.length);
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
    this.count(this.areaWrites, offset, length);
    this.listener?.(Math.floor(offset / this.trackBlockSize), Math.floor((offset + length - 1) / this.trackBlockSize));
  }

  private count(arr: Float64Array, offset: number, length: number): void {
    const a = Math.floor(offset / this.areaSize);
    const b = Math.floor((offset + length - 1) / this.areaSize);
    for (let i = a; i <= b; i++) arr[i]! += 1;
  }
}
