/**
 * The destination datacenter's LAN in the fleet simulation (sim-fleet.ts):
 * every host has one network port of `bandwidthBps` each way and the LAN a
 * round trip of `rttMs`. A block fetched from a sibling host costs its bytes
 * on the serving host's sending side and on the fetching host's receiving
 * side: each side is a FIFO (a transfer starts when both are free), so a
 * popular store host serving many siblings is a bottleneck the model shows.
 * A host reading its own files costs nothing here (engine reads are free in
 * the simulator). Not modelled: switch fabric limits, TCP and TLS costs,
 * the replica server's CPU.
 */
import { sleep, type Clock } from '../util/clock.ts';

export interface LanModel {
  /** Each host's port, bits per second each way. */
  bandwidthBps: number;
  /** Round trip between two hosts, ms. */
  rttMs: number;
}

/** 10 Gbit/s ports and a 0.2 ms round trip: one datacenter's hosts. */
export const DEFAULT_LAN: LanModel = { bandwidthBps: 10e9, rttMs: 0.2 };

export class SimLan {
  /** When each host's sending and receiving side is next free (virtual ms). */
  private readonly sendFree = new Map<string, number>();
  private readonly receiveFree = new Map<string, number>();
  readonly stats = { fetches: 0, bytes: 0 };

  constructor(private readonly clock: Clock, readonly model: LanModel = DEFAULT_LAN) {
    if (!(model.bandwidthBps > 0) || !Number.isFinite(model.bandwidthBps)) throw new RangeError(`LAN bandwidth must be a positive finite rate (got ${model.bandwidthBps})`);
    if (!(model.rttMs >= 0)) throw new RangeError(`LAN round trip must not be negative (got ${model.rttMs})`);
  }

  /** Resolves when `bytes` asked for by `client` have come from `server` (a request, then the reply). */
  async transfer(server: string, client: string, bytes: number): Promise<void> {
    if (server === client) return;
    const now = this.clock.now();
    const half = this.model.rttMs / 2;
    const start = Math.max(now + half, this.sendFree.get(server) ?? 0, this.receiveFree.get(client) ?? 0);
    const end = start + (bytes * 8 * 1000) / this.model.bandwidthBps;
    this.sendFree.set(server, end);
    this.receiveFree.set(client, end);
    this.stats.fetches++;
    this.stats.bytes += bytes;
    await sleep(this.clock, end + half - now);
  }
}
