import { FilterDisk } from '../filter.ts';
import type { Extent, WriteOptions, ZeroOptions } from '../disk.ts';

/** Per-operation totals: `count` and `bytes` of requests that succeeded, `errors` of those that failed. */
export interface OpStats {
  count: number;
  bytes: number;
  errors: number;
}

export interface DiskStats {
  read: OpStats;
  write: OpStats;
  trim: OpStats;
  zero: OpStats;
  flush: OpStats;
  cache: OpStats;
  /** bytes: length of the range requested. */
  extents: OpStats;
}

/**
 * Counts requests and bytes per operation. Plain number fields updated in
 * place, so the per-request cost is a few additions; snapshot() builds the
 * object only when asked.
 */
export class StatsDisk extends FilterDisk {
  private readCount = 0;
  private readBytes = 0;
  private readErrors = 0;
  private writeCount = 0;
  private writeBytes = 0;
  private writeErrors = 0;
  private trimCount = 0;
  private trimBytes = 0;
  private trimErrors = 0;
  private zeroCount = 0;
  private zeroBytes = 0;
  private zeroErrors = 0;
  private flushCount = 0;
  private flushErrors = 0;
  private cacheCount = 0;
  private cacheBytes = 0;
  private cacheErrors = 0;
  private extentsCount = 0;
  private extentsBytes = 0;
  private extentsErrors = 0;

  override async read(offset: number, into: Uint8Array): Promise<void> {
    try {
      await this.inner.read(offset, into);
    } catch (err) {
      this.readErrors++;
      throw err;
    }
    this.readCount++;
    this.readBytes += into.length;
  }

  override async write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    try {
      await this.inner.write(offset, data, opts);
    } catch (err) {
      this.writeErrors++;
      throw err;
    }
    this.writeCount++;
    this.writeBytes += data.length;
  }

  override async flush(): Promise<void> {
    try {
      await this.inner.flush();
    } catch (err) {
      this.flushErrors++;
      throw err;
    }
    this.flushCount++;
  }

  override async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    try {
      await this.inner.trim(offset, length, opts);
    } catch (err) {
      this.trimErrors++;
      throw err;
    }
    this.trimCount++;
    this.trimBytes += length;
  }

  override async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    try {
      await this.inner.writeZeroes(offset, length, opts);
    } catch (err) {
      this.zeroErrors++;
      throw err;
    }
    this.zeroCount++;
    this.zeroBytes += length;
  }

  override async cache(offset: number, length: number): Promise<void> {
    try {
      await this.inner.cache(offset, length);
    } catch (err) {
      this.cacheErrors++;
      throw err;
    }
    this.cacheCount++;
    this.cacheBytes += length;
  }

  override async extents(offset: number, length: number, maxExtents?: number): Promise<Extent[]> {
    let out: Extent[];
    try {
      out = await this.inner.extents(offset, length, maxExtents);
    } catch (err) {
      this.extentsErrors++;
      throw err;
    }
    this.extentsCount++;
    this.extentsBytes += length;
    return out;
  }

  snapshot(): DiskStats {
    return {
      read: { count: this.readCount, bytes: this.readBytes, errors: this.readErrors },
      write: { count: this.writeCount, bytes: this.writeBytes, errors: this.writeErrors },
      trim: { count: this.trimCount, bytes: this.trimBytes, errors: this.trimErrors },
      zero: { count: this.zeroCount, bytes: this.zeroBytes, errors: this.zeroErrors },
      flush: { count: this.flushCount, bytes: 0, errors: this.flushErrors },
      cache: { count: this.cacheCount, bytes: this.cacheBytes, errors: this.cacheErrors },
      extents: { count: this.extentsCount, bytes: this.extentsBytes, errors: this.extentsErrors },
    };
  }

  /** Zeroes every counter. */
  reset(): void {
    this.readCount = this.readBytes = this.readErrors = 0;
    this.writeCount = this.writeBytes = this.writeErrors = 0;
    this.trimCount = this.trimBytes = this.trimErrors = 0;
    this.zeroCount = this.zeroBytes = this.zeroErrors = 0;
    this.flushCount = this.flushErrors = 0;
    this.cacheCount = this.cacheBytes = this.cacheErrors = 0;
    this.extentsCount = this.extentsBytes = this.extentsErrors = 0;
  }
}
