import type { PostcopyDisk } from '../block/filters/postcopy.ts';
import type { Clock } from '../util/clock.ts';
import { PrefetchPolicy, type PrefetchConfig } from '../policy/prefetch.ts';
import type { HeatMap } from '../policy/heat-map.ts';
import { ReadContinuity } from '../policy/read-continuity.ts';

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
  /**
   * Without an explicit `config.hotAreaReads`, an area counts as hot when its
   * read heat at cut-over is among the hottest this share of the areas in the
   * heat map (default 0.1: the hot-spot share the workloads are pinned to).
   */
  hotAreaShare?: number;
  /** Block → the block the VM read right after it at the source (block-successors.ts). */
  follows?: ReadonlyMap<number, number>;
}

/** The read heat of the area at the `share` quantile from the top (at least 2 reads). */
export function hotThreshold(heat: HeatMap, now: number, share: number): number {
  const known = heat.size;
  if (known === 0) return 2;
  const top = heat.hottestReads(now, Math.max(1, Math.ceil(known * share)));
  return Math.max(2, top.at(-1)?.reads ?? 2);
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
  private readonly continuity = new ReadContinuity();

  constructor(private readonly o: PrefetcherOptions) {
    const d = o.disk;
    const hotAreaReads = o.config?.hotAreaReads ?? hotThreshold(o.heat, o.clock.now(), o.hotAreaShare ?? 0.1);
    // No PushFrontier here, even behind a hot-ordered push (issue 18): a miss is the VM reading that area at the
    // target now, fresher evidence than the source's heat the frontier scores the push by, and on the recorded
    // traces the push's next blocks (what a job had just read) were often not read again. Yielding to it cost
    // backup, mixed and targz a fifth to a quarter of their waits, walk 8 % (docs/design.md "Recorded guest traces").
    this.policy = new PrefetchPolicy({ blockCount: d.blockCount, blockSize: d.unit, areaBlocks: o.areaBlocks, ...o.config, hotAreaReads }, o.heat, o.co, undefined, o.follows);
    this.wanted = (b) => d.isWanted(b);
    d.observeReads((offset, length, blocks) => this.read(offset, length, blocks));
  }

  /** Block `b` arrived from the source: as the answer to a prefetch, as part of the background push, or otherwise. */
  arrived(b: number, byPrefetch: boolean, byPush = false): void {
    this.policy.onArrived(b, byPrefetch, byPush);
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
      prefetchStreamBlocks: s.streamBlocks,
      prefetchAreaBlocks: s.areaBlocks,
      prefetchCoAccessBlocks: s.coAccessBlocks,
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

  private read(offset: number, length: number, touched: ReadonlyArray<[number, boolean]>): void {
    const now = this.o.clock.now();
    const sequential = this.continuity.read(offset, length);
    // What a fetch takes here, as measured (until the first miss lands: the configured guess).
    const latency = this.o.disk.missLatency.mean;
    if (latency !== undefined && this.o.config?.fetchLatencyMs === undefined) this.policy.fetchLatencyMs = latency;
    for (const [b, present] of touched) {
      // Consecutive blocks of one area count once, about as the source counts one per request and area.
      const area = Math.floor(b / this.o.areaBlocks);
      if (area !== this.lastArea) this.o.heat.recordRead(area, now);
      this.lastArea = area;
      const blocks = this.policy.onRead(b, present, now, this.wanted, sequential);
      if (blocks.length) this.o.send(blocks);
    }
  }
}
