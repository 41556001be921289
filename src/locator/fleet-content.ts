/**
 * Sibling hosts' content for a target (src/migrate/remote-content.ts): the
 * Redis Cluster locator says where, the replica client fetches over the LAN.
 * One RedisLocator and one ReplicaClient can be shared by every migration in
 * a process; a FleetContent is the view of one host (its own address is left
 * out of lookups and named in what it publishes).
 */
import type { Logger } from 'pino';
import type { RemoteContent, RemoteHit } from '../migrate/remote-content.ts';
import type { RedisLocator } from './redis-locator.ts';
import type { ReplicaClient } from './replica-client.ts';
import type { LocatorEntry } from './locator-keys.ts';

interface FleetHit extends RemoteHit {
  entry: LocatorEntry;
}

export interface FleetContentOptions {
  locator: RedisLocator;
  client: ReplicaClient;
  /** This host's replica server as siblings reach it (tcp:HOST:PORT); without it nothing is published. */
  selfAddress?: string;
  log: Logger;
}

export class FleetContent implements RemoteContent {
  private hostNo: Promise<number | undefined> | undefined;

  constructor(private readonly o: FleetContentOptions) {}

  async lookup(blockSize: number, ids: Uint8Array[]): Promise<Array<RemoteHit | undefined>> {
    const hits = await this.o.locator.lookup(blockSize, ids);
    return hits.map((h) => (h && h.hostAddress !== this.o.selfAddress ? ({ where: h.hostAddress, entry: h.entry } satisfies FleetHit) : undefined));
  }

  async fetch(blockSize: number, id: Uint8Array, hit: RemoteHit, into: Buffer): Promise<boolean> {
    // An in-flight hit (src/locator/claiming-content.ts) names no block yet.
    const { entry } = hit as Partial<FleetHit>;
    if (!entry) return false;
    const data = await this.o.client.fetch(hit.where, { blockSize, image: entry.image, block: entry.block, id });
    if (!data || data.length !== into.length) return false;
    data.copy(into);
    return true;
  }

  stale(blockSize: number, id: Uint8Array): void {
    void this.o.locator.forget(blockSize, id);
  }

  publish(blockSize: number, image: number, entries: Array<{ id: Uint8Array; offset: number }>): void {
    void this.publishEntries(blockSize, image, entries);
  }

  /**
   * Queues these entries with the locator under this host's number; with
   * `visible`, resolves only once they are sent (or dropped), so that a
   * lookup made after it finds them. Nothing is published without an address.
   */
  async publishEntries(blockSize: number, image: number, entries: Array<{ id: Uint8Array; offset: number }>, visible = false): Promise<void> {
    const host = await this.registered();
    if (host === undefined) return;
    this.o.locator.publish(blockSize, host, image, entries.map((e) => ({ id: e.id, block: Math.floor(e.offset / blockSize) })));
    if (visible) await this.o.locator.flush();
  }

  private registered(): Promise<number | undefined> {
    const self = this.o.selfAddress;
    if (!self) return Promise.resolve(undefined);
    // Registered once; if the cluster cannot be reached now, the next batch tries again.
    this.hostNo ??= this.o.locator.registerHost(self).catch((e: unknown) => {
      this.o.log.debug({ err: (e as Error).message }, 'could not register this host with the content locator');
      this.hostNo = undefined;
      return undefined;
    });
    return this.hostNo;
  }
}
