/**
 * A VM's view of an NBD export whose server may die and come back (an agent
 * killed and restarted), as QEMU's NBD client behaves with `reconnect-delay`:
 * a request whose connection broke is sent again on a new connection, so a
 * write that was never acknowledged may be applied twice (same bytes), and one
 * that was acknowledged is never repeated. Errors the server replies with
 * (ESHUTDOWN, EIO) go to the caller.
 */
import type { Disk, Extent, WriteOptions, ZeroOptions } from '../../src/block/disk.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { IoError, ShutdownError } from '../../src/errors.ts';
import type { Address } from '../../src/util/address.ts';

export class ReconnectingDisk implements Disk {
  private client: NbdClient;
  private connecting: Promise<NbdClient> | undefined;
  private closedForGood = false;
  reconnects = 0;

  private constructor(private readonly address: Address, first: NbdClient, private readonly giveUpMs: number, private readonly gone?: () => boolean) {
    this.client = first;
  }

  /** `gone`: the server has ended for good (the VM's disk moved): a broken request fails with ESHUTDOWN instead of waiting. */
  static async connect(address: Address, giveUpMs = 60_000, gone?: () => boolean): Promise<ReconnectingDisk> {
    return new ReconnectingDisk(address, await connectRetrying(address, Date.now() + giveUpMs), giveUpMs, gone);
  }

  get size() { return this.client.size; }
  get capabilities() { return this.client.capabilities; }
  get blockSize() { return this.client.blockSize; }

  read(offset: number, into: Uint8Array): Promise<void> { return this.op((c) => c.read(offset, into)); }
  write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> { return this.op((c) => c.write(offset, data, opts)); }
  flush(): Promise<void> { return this.op((c) => c.flush()); }
  trim(offset: number, length: number, opts?: WriteOptions): Promise<void> { return this.op((c) => c.trim(offset, length, opts)); }
  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> { return this.op((c) => c.writeZeroes(offset, length, opts)); }
  cache(offset: number, length: number): Promise<void> { return this.op((c) => c.cache(offset, length)); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.op((c) => c.extents(offset, length)); }

  async close(): Promise<void> {
    this.closedForGood = true;
    await this.client.close().catch(() => {});
  }

  private async op<T>(fn: (c: NbdClient) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.giveUpMs;
    for (;;) {
      const c = this.client;
      try {
        return await fn(c);
      } catch (e) {
        // A reply from a live server is the answer; a broken connection is not. (Requests fail
        // the moment the connection breaks; the socket's close follows right after.)
        if (!c.isClosed) await Promise.race([c.closed, new Promise((r) => setTimeout(r, 100))]);
        if (!c.isClosed || this.closedForGood) throw e;
        if (this.gone?.()) throw new ShutdownError(`NBD server ${JSON.stringify(this.address)} has ended: the disk moved`);
        if (Date.now() > deadline) throw new IoError(`NBD server ${JSON.stringify(this.address)} did not come back within ${this.giveUpMs} ms`);
        await this.reconnect(c, deadline);
      }
    }
  }

  private async reconnect(broken: NbdClient, deadline: number): Promise<void> {
    if (this.client !== broken) return;
    this.connecting ??= connectRetrying(this.address, deadline, this.gone).then((c) => {
      this.client = c;
      this.reconnects++;
      this.connecting = undefined;
      void broken.close().catch(() => {});
      return c;
    }, (e) => {
      this.connecting = undefined;
      throw e;
    });
    await this.connecting;
  }
}

async function connectRetrying(address: Address, deadline: number, gone?: () => boolean): Promise<NbdClient> {
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    try {
      return await NbdClient.connect(address);
    } catch (e) {
      if (gone?.()) throw new ShutdownError(`NBD server ${JSON.stringify(address)} has ended: the disk moved`);
      if (Date.now() + delay > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
