import { FilterDisk } from '../filter.ts';
import type { Disk, DiskCapabilities, WriteOptions, ZeroOptions } from '../disk.ts';
import { ReadOnlyError } from '../../errors.ts';

/** Refuses every modification (EPERM on the wire); reads, extents, flush and cache pass through. */
export class ReadOnlyDisk extends FilterDisk {
  private readonly caps: DiskCapabilities;

  constructor(inner: Disk) {
    super(inner);
    this.caps = Object.freeze({ ...inner.capabilities, readOnly: true, canTrim: false, canZero: false, canFastZero: false });
  }

  override get capabilities(): DiskCapabilities {
    return this.caps;
  }

  override async write(_offset: number, _data: Uint8Array, _opts?: WriteOptions): Promise<void> {
    throw new ReadOnlyError();
  }

  override async writev(_offset: number, _chunks: readonly Uint8Array[], _opts?: WriteOptions): Promise<void> {
    throw new ReadOnlyError();
  }

  override async trim(_offset: number, _length: number, _opts?: WriteOptions): Promise<void> {
    throw new ReadOnlyError();
  }

  override async writeZeroes(_offset: number, _length: number, _opts?: ZeroOptions): Promise<void> {
    throw new ReadOnlyError();
  }
}
