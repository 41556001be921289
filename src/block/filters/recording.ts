import { FilterDisk } from '../filter.ts';
import type { Disk, WriteOptions, ZeroOptions } from '../disk.ts';

/** Where a RecordingDisk reports the requests that succeeded (a trace recorder). */
export interface RequestRecorder {
  /** `atMs` is when the request arrived; `data` is only valid during the call. */
  read(atMs: number, offset: number, data: Uint8Array): void;
  write(atMs: number, offset: number, data: Uint8Array): void;
  /** Write zeroes and trim: the range reads as zero afterwards (as file and memory disks do). */
  zero(atMs: number, offset: number, length: number): void;
}

/**
 * Reports every successful read, write, write-zeroes and trim to a recorder
 * (`--record-trace`), with its arrival time. The recorder's calls are
 * synchronous and never wait: it decides itself what to do when its file
 * falls behind, so the VM's I/O is never held by the trace. Failed requests
 * are not reported: the VM saw an error, the disk did not change.
 */
export class RecordingDisk extends FilterDisk {
  constructor(inner: Disk, private readonly recorder: RequestRecorder, private readonly now: () => number) {
    super(inner);
  }

  override async read(offset: number, into: Uint8Array): Promise<void> {
    const at = this.now();
    await this.inner.read(offset, into);
    this.recorder.read(at, offset, into);
  }

  override async write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    const at = this.now();
    await this.inner.write(offset, data, opts);
    this.recorder.write(at, offset, data);
  }

  override async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    const at = this.now();
    await this.inner.writeZeroes(offset, length, opts);
    this.recorder.zero(at, offset, length);
  }

  override async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    const at = this.now();
    await this.inner.trim(offset, length, opts);
    this.recorder.zero(at, offset, length);
  }
}
