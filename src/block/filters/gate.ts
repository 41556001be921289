import { FilterDisk } from '../filter.ts';
import type { Disk, Extent, WriteOptions, ZeroOptions } from '../disk.ts';
import { ShutdownError } from '../../errors.ts';
import { writeChunks } from '../writev.ts';

type GateState = 'open' | 'held' | 'closed';

/**
 * Controls whether the VM's I/O may reach a disk: `open` passes requests,
 * `held` queues new ones (the storage downtime window of a cut-over), `closed`
 * fails them with ESHUTDOWN (the source after cut-over: the VM must go to the
 * target). hold() resolves once requests already inside have finished, so the
 * caller knows the disk is quiet.
 */
export class GateDisk extends FilterDisk {
  private state: GateState;
  private inside = 0;
  private readonly quietWaiters: Array<() => void> = [];
  private readonly held: Array<{ go: () => void; fail: (e: Error) => void }> = [];
  private closedReason = 'this disk has moved: migration cut over to the target';

  constructor(inner: Disk, initial: GateState = 'open') {
    super(inner);
    this.state = initial;
  }

  get status(): GateState {
    return this.state;
  }

  get waiting(): number {
    return this.held.length;
  }

  /** Stop letting requests in; resolves when every request already inside has completed. */
  hold(): Promise<void> {
    if (this.state === 'open') this.state = 'held';
    if (this.inside === 0) return Promise.resolve();
    return new Promise((resolve) => this.quietWaiters.push(resolve));
  }

  open(): void {
    this.state = 'open';
    for (const h of this.held.splice(0)) h.go();
  }

  /** Fail held and future requests with ESHUTDOWN. */
  shut(reason?: string): void {
    this.state = 'closed';
    if (reason) this.closedReason = reason;
    const err = new ShutdownError(this.closedReason);
    for (const h of this.held.splice(0)) h.fail(err);
  }

  override read(offset: number, into: Uint8Array): Promise<void> {
    return this.pass(() => this.inner.read(offset, into));
  }
  override write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    return this.pass(() => this.inner.write(offset, data, opts));
  }
  override writev(offset: number, chunks: readonly Uint8Array[], opts?: WriteOptions): Promise<void> {
    return this.pass(() => writeChunks(this.inner, offset, chunks, opts));
  }
  override flush(): Promise<void> {
    return this.pass(() => this.inner.flush());
  }
  override trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    return this.pass(() => this.inner.trim(offset, length, opts));
  }
  override writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    return this.pass(() => this.inner.writeZeroes(offset, length, opts));
  }
  override cache(offset: number, length: number): Promise<void> {
    return this.pass(() => this.inner.cache(offset, length));
  }
  override extents(offset: number, length: number, max?: number): Promise<Extent[]> {
    return this.pass(() => this.inner.extents(offset, length, max));
  }

  private async pass<T>(op: () => Promise<T>): Promise<T> {
    if (this.state === 'closed') throw new ShutdownError(this.closedReason);
    if (this.state === 'held') {
      await new Promise<void>((go, fail) => this.held.push({ go, fail }));
    }
    this.inside++;
    try {
      return await op();
    } finally {
      this.inside--;
      if (this.inside === 0 && this.state !== 'open') for (const f of this.quietWaiters.splice(0)) f();
    }
  }
}
