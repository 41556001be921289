import type { PostcopyDisk } from '../block/filters/postcopy.ts';
import type { Clock } from '../util/clock.ts';
import { PrefetchPolicy, type PrefetchConfig } from '../policy/prefetch.ts';
import type { HeatMap } from '../policy/heat-map.ts';

export interface PrefetcherOptions {
  disk: PostcopyDisk;
  clock: Clock;
  /** Sends a prefetch request (FETCH with the prefetch flag, in the prefetch lane). */
  send: (blocks: number[]) => void;
  /** The source's heat handed over at cut-over; the target adds its own reads. */
  heat: HeatMap;
  co: ReadonlyMap<number, readonly number[]>;
  areaBlocks: number;
  config?: Partial<PrefetchConfig>;
}

/**
 * The target's prefetch during post-copy: watches the VM's reads on the
 * post-copy disk, keeps the heat map current with them, asks the prefetch
 * policy what to fetch and sends it. Arrivals are reported by the engine.
 */
export class Prefetcher {
  readonly policy: PrefetchPolicy;
  private readonly wanted: (b: number) => boolean;
  private lastArea = -1;

  constructor(private readonly o: PrefetcherOptions) {
    const d = o.disk;
    this.policy = new PrefetchPolicy({ blockCount: d.blockCount, blockSize: d.unit, areaBlocks: o.areaBlocks, ...o.config }, o.heat, o.co);
    this.wanted = (b) => d.isWanted(b);
    d.observeReads((b, present) => this.read(b, present));
  }

  /** Block `b` arrived from the source for `reason` ('prefetch' when it answers one). */
  arrived(b: number, byPrefetch: boolean): void {
    this.policy.onArrived(b, byPrefetch);
  }

  /** Post-copy is over: stop watching and settle the waste count. */
  finish(): void {
    this.o.disk.observeReads(undefined);
    this.policy.finish();
  }

  stats(): Record<string, number> {
    const s = this.policy.stats;
    return {
      prefetchRequested: s.requestedBlocks,
      prefetchHits: s.hits,
      prefetchLate: s.late,
      prefetchWastedBytes: this.policy.wastedBytes,
      prefetchDroppedForBudget: s.droppedForBudget,
      prefetchOutstandingBytes: this.policy.outstandingBytes,
      prefetchStreams: s.streams,
      prefetchSequentialStreams: s.sequentialStreams,
      prefetchWindow: s.window,
    };
  }

  private read(b: number, present: boolean): void {
    const now = this.o.clock.now();
    // Consecutive blocks of one area count once, about as the source counts one per request and area.
    const area = Math.floor(b / this.o.areaBlocks);
    if (area !== this.lastArea) this.o.heat.recordRead(area, now);
    this.lastArea = area;
    const blocks = this.policy.onRead(b, present, now, this.wanted);
    if (blocks.length) this.o.send(blocks);
  }
}
