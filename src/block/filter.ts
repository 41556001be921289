import type { BlockSizeHint, Disk, DiskCapabilities, Extent, WriteOptions, ZeroOptions } from './disk.ts';
import { joinChunks, writeChunks } from './writev.ts';

/**
 * Base for filters: a Disk that wraps a Disk (as nbdkit filters do) and
 * forwards every member, so a subclass overrides only what it changes.
 * Forwarding returns the inner promise as is: no extra await per request.
 * Subclasses that change size/capabilities/blockSize override the getter.
 * The filter owns its inner disk: close() closes it.
 */
export class FilterDisk implements Disk {
  constructor(protected readonly inner: Disk) {}

  get size(): number {
    return this.inner.size;
  }

  get capabilities(): DiskCapabilities {
    return this.inner.capabilities;
  }

  get blockSize(): BlockSizeHint {
    return this.inner.blockSize;
  }

  read(offset: number, into: Uint8Array): Promise<void> {
    return this.inner.read(offset, into);
  }

  write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    return this.inner.write(offset, data, opts);
  }

  /**
   * Forwards the chunks as they are, unless a subclass overrides write(): it
   * must see every write, so it gets the joined bytes (a subclass that can
   * take chunks overrides writev too).
   */
  writev(offset: number, chunks: readonly Uint8Array[], opts?: WriteOptions): Promise<void> {
    if (this.write !== FilterDisk.prototype.write) return this.write(offset, joinChunks(chunks), opts);
    return writeChunks(this.inner, offset, chunks, opts);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    return this.inner.trim(offset, length, opts);
  }

  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    return this.inner.writeZeroes(offset, length, opts);
  }

  cache(offset: number, length: number): Promise<void> {
    return this.inner.cache(offset, length);
  }

  extents(offset: number, length: number, maxExtents?: number): Promise<Extent[]> {
    return this.inner.extents(offset, length, maxExtents);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
