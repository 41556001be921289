import { FilterDisk } from '../block/filter.ts';
import type { Disk, Extent, WriteOptions, ZeroOptions } from '../block/disk.ts';
import type { StorageDaemon } from './storage-daemon.ts';

/** How long a failed request waits for the daemon's exit to be seen before reporting the plain error. */
const EXIT_SETTLE_MS = 1_000;

/**
 * The NBD client of a supervised qemu-storage-daemon, as a Disk that owns the
 * daemon: close() disconnects and then stops it. A request that fails because
 * the daemon died fails with the daemon's error (FLIMCD_ERR_STORAGE_DAEMON:
 * how it ended and its last words), not a bare "connection closed", so the
 * engine's abort path names the cause.
 */
export class StorageDaemonDisk extends FilterDisk {
  constructor(inner: Disk, readonly daemon: StorageDaemon) {
    super(inner);
  }

  private async explain<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exit = await Promise.race([this.daemon.exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), EXIT_SETTLE_MS)))]);
      clearTimeout(timer);
      if (exit && this.daemon.crashed) throw this.daemon.crashError(exit);
      throw e;
    }
  }

  override read(offset: number, into: Uint8Array): Promise<void> {
    return this.explain(super.read(offset, into));
  }

  override write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    return this.explain(super.write(offset, data, opts));
  }

  override flush(): Promise<void> {
    return this.explain(super.flush());
  }

  override trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    return this.explain(super.trim(offset, length, opts));
  }

  override writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    return this.explain(super.writeZeroes(offset, length, opts));
  }

  override extents(offset: number, length: number, maxExtents?: number): Promise<Extent[]> {
    return this.explain(super.extents(offset, length, maxExtents));
  }

  override async close(): Promise<void> {
    try {
      await super.close();
    } catch {
      // A dead daemon's connection cannot be closed cleanly; stopping it below is what matters.
    }
    await this.daemon.stop();
  }
}
