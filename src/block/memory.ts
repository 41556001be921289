import { checkRange } from './range.ts';
import { ExtentFlags, fullCapabilities, DEFAULT_BLOCK_SIZE_HINT, type Disk, type Extent, type ZeroOptions } from './disk.ts';
import { ReadOnlyError, ShutdownError } from '../errors.ts';
import { chunksLength } from './writev.ts';

/**
 * A sparse in-memory disk: storage is a map of fixed-size pages allocated on
 * first write, so a large empty disk costs nothing. Unallocated pages are
 * holes that read as zero, and extents() reports them as such.
 */
export class MemoryDisk implements Disk {
  readonly size: number;
  readonly capabilities;
  readonly blockSize = DEFAULT_BLOCK_SIZE_HINT;
  private readonly pageSize: number;
  private readonly pages = new Map<number, Uint8Array>();
  private closed = false;

  constructor(size: number, opts: { pageSize?: number; readOnly?: boolean } = {}) {
    this.size = size;
    this.pageSize = opts.pageSize ?? 65536;
    this.capabilities = fullCapabilities({ readOnly: opts.readOnly ?? false });
  }

  /** Bytes of page memory in use. */
  get allocatedBytes(): number {
    return this.pages.size * this.pageSize;
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    this.live();
    checkRange(this.size, offset, into.length, false);
    let done = 0;
    while (done < into.length) {
      const pos = offset + done;
      const pageNo = Math.floor(pos / this.pageSize);
      const inPage = pos - pageNo * this.pageSize;
      const n = Math.min(this.pageSize - inPage, into.length - done);
      const page = this.pages.get(pageNo);
      if (page) into.set(page.subarray(inPage, inPage + n), done);
      else into.fill(0, done, done + n);
      done += n;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writable();
    checkRange(this.size, offset, data.length, true);
    this.copyIn(offset, data);
  }

  async writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    this.writable();
    checkRange(this.size, offset, chunksLength(chunks), true);
    let at = offset;
    for (const c of chunks) {
      this.copyIn(at, c);
      at += c.length;
    }
  }

  private copyIn(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const pageNo = Math.floor(pos / this.pageSize);
      const inPage = pos - pageNo * this.pageSize;
      const n = Math.min(this.pageSize - inPage, data.length - done);
      let page = this.pages.get(pageNo);
      if (!page) {
        page = new Uint8Array(this.pageSize);
        this.pages.set(pageNo, page);
      }
      page.set(data.subarray(done, done + n), inPage);
      done += n;
    }
  }

  async flush(): Promise<void> {
    this.live();
  }

  async trim(offset: number, length: number): Promise<void> {
    this.writable();
    checkRange(this.size, offset, length, true);
    this.zeroRange(offset, length, false);
  }

  async writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    this.writable();
    checkRange(this.size, offset, length, true);
    this.zeroRange(offset, length, opts.noHole ?? false);
  }

  async cache(offset: number, length: number): Promise<void> {
    this.live();
    checkRange(this.size, offset, length, false);
  }

  async extents(offset: number, length: number, maxExtents = Infinity): Promise<Extent[]> {
    this.live();
    checkRange(this.size, offset, length, false);
    const out: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const pageNo = Math.floor(pos / this.pageSize);
      const n = Math.min((pageNo + 1) * this.pageSize, end) - pos;
      const flags = this.pages.has(pageNo) ? 0 : ExtentFlags.HOLE | ExtentFlags.ZERO;
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += n;
      else if (out.length >= maxExtents) break;
      else out.push({ offset: pos, length: n, flags });
      pos += n;
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pages.clear();
  }

  private zeroRange(offset: number, length: number, keepAllocated: boolean): void {
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const pageNo = Math.floor(pos / this.pageSize);
      const inPage = pos - pageNo * this.pageSize;
      const n = Math.min(this.pageSize - inPage, end - pos);
      const page = this.pages.get(pageNo);
      if (n === this.pageSize && !keepAllocated) this.pages.delete(pageNo);
      else if (page) page.fill(0, inPage, inPage + n);
      else if (keepAllocated) this.pages.set(pageNo, new Uint8Array(this.pageSize));
      pos += n;
    }
  }

  private live(): void {
    if (this.closed) throw new ShutdownError('memory disk is closed');
  }

  private writable(): void {
    this.live();
    if (this.capabilities.readOnly) throw new ReadOnlyError();
  }
}
