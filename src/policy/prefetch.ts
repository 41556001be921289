/**
 * Prefetch on miss at the target during post-copy (docs/design.md phase 4), as a
 * pure decision: read and arrival events in, block lists to prefetch out.
 * The caller says which blocks are worth asking for (`wanted`: missing and
 * not on their way), sends the lists in the prefetch lane and reports arrivals.
 *
 * Three sources of prefetch, in this priority within one decision:
 * 1. Sequential streams (as Linux readahead). A miss that continues no known
 *    stream opens one and fetches the `window` blocks after it (none by
 *    default). A read that continues a stream moves it on and confirms it; a
 *    confirmed stream reads ahead one block, and its own window doubles each
 *    time its read-ahead is read in time or nearly (a hit, or a late read:
 *    the reader needs more blocks in flight to stay ahead of the latency);
 *    whenever the reader comes within half a window of the end of what was
 *    fetched ahead, the next stretch goes out. The window misses start with
 *    adapts: it doubles when a miss's neighbours are read, and halves (down
 *    to `minWindow`, 0 by default) when a stream goes stale (no read for
 *    `staleMs`, or pushed out of the table) leaving prefetched blocks unread:
 *    waste. Neighbours of a random miss are rarely read, and each one fetched
 *    takes the link from the push, so misses fetch none. A stream reads ahead
 *    only once it has run for `fetchLatencyMs` (a faster burst has fetched
 *    all it reads on demand before any prefetch could land), and never
 *    further ahead than it has come so far (short runs end soon).
 * 2. Hot areas: a miss in an area whose read heat (the source's, handed over
 *    at cut-over, plus what the target itself observes) is at least
 *    `hotAreaReads` fetches the rest of that area.
 * 3. Co-access: a miss on a block fetches the blocks the VM read right after
 *    it at the source (block-successors.ts: a file's data after its inode, the
 *    next file of a job), up to `followHops` hops along that chain; and a miss
 *    in an area fetches the areas that were read together with it at the
 *    source (up to `maxCoAreas`). Both count as `co_access`.
 * With a read-hot-first push (a `PushFrontier`), 2 and 3 yield to it: an area
 * is fetched whole only if it is hotter than what the push sends next and the
 * push will not reach it soon anyway (push-frontier.ts). The agents pass none
 * (prefetcher.ts says why): on the recorded traces a miss beat the push's guess.
 *
 * Bounded: blocks requested and not yet arrived never exceed
 * `maxOutstandingBytes` (what does not fit is dropped, the background push
 * still brings it), the stream table holds `maxStreams` entries, and the
 * per-block state is two bitmaps' worth of memory.
 */
import type { HeatMap } from './heat-map.ts';
import type { PushFrontier } from './push-frontier.ts';
import { SparseBits } from '../util/sparse-bits.ts';

export interface PrefetchConfig {
  blockCount: number;
  blockSize: number;
  /** Blocks per heat-map area. */
  areaBlocks: number;
  /** Window (blocks) new streams start with; adapts between min and max. */
  initialWindow: number;
  minWindow: number;
  maxWindow: number;
  /** Cap on requested-but-not-arrived prefetch bytes. */
  maxOutstandingBytes: number;
  maxStreams: number;
  /** A stream with no read for this long is over. */
  staleMs: number;
  /**
   * About how long a fetch takes to land (ms). A stream reads ahead only once
   * it has run this long: a reader that gets through its run faster (a file
   * read in one burst) has demand-fetched every block before a prefetch of it
   * could land, so reading ahead would only send blocks twice and past its end.
   * The caller may update it (`fetchLatencyMs`) as it measures.
   */
  fetchLatencyMs: number;
  /** Read heat at which a missed area is fetched whole; Infinity turns area prefetch off. */
  hotAreaReads: number;
  /** Most co-accessed areas fetched per miss; 0 turns co-access prefetch off. */
  maxCoAreas: number;
  /** Hops along the learned block successor chain fetched per miss; 0 turns it off. */
  followHops: number;
}

export const DEFAULT_PREFETCH = {
  initialWindow: 0,
  fetchLatencyMs: 50,
  minWindow: 0,
  maxWindow: 64,
  maxOutstandingBytes: 4 * 1024 * 1024,
  maxStreams: 32,
  staleMs: 2000,
  hotAreaReads: 2,
  maxCoAreas: 2,
  // A few hops: a file walk's next jumps; each is one block, so a wrong guess costs one block of link.
  followHops: 4,
} as const;

export interface PrefetchStats {
  /** Blocks asked for. */
  requestedBlocks: number;
  /** Of those, asked for by sequential streams, by whole-area prefetch, by co-access. */
  streamBlocks: number;
  areaBlocks: number;
  coAccessBlocks: number;
  /** Reads of blocks that arrived by prefetch before the VM read them. */
  hits: number;
  /** Reads of blocks still on their way from a prefetch (misses, but shorter ones). */
  late: number;
  /** Prefetched blocks the VM had not read when finish() was called. */
  wastedBlocks: number;
  /** Blocks left out because the outstanding budget was full. */
  droppedForBudget: number;
  streams: number;
  /** Streams that saw at least one read beyond their first miss. */
  sequentialStreams: number;
  /** The window new streams start with now. */
  window: number;
}

interface Stream {
  /** Last block the reader touched. */
  last: number;
  /** When the stream began, and how many blocks it has moved on since. */
  startedAt: number;
  advanced: number;
  window: number;
  /** Highest block fetched ahead for this stream (last if none). */
  ahead: number;
  touchedAt: number;
  confirmed: boolean;
  /** The last block it read had come with the push: the push runs ahead of this reader, so it reads nothing ahead. */
  fedByPush: boolean;
}

export class PrefetchPolicy {
  readonly config: PrefetchConfig;
  private readonly streams: Stream[] = []; // most recently used last
  /** Requested and not arrived: block → when it was asked for. */
  private readonly outstanding = new Map<number, number>();
  private now = 0;
  // Per-block flags in pages made on first use: building the policy at cut-over, and finish(), cost what
  // was prefetched and pushed, not the image's block count (a 1 TiB image has 16 M blocks).
  /** Arrived by prefetch and not read yet. */
  private readonly unread: SparseBits;
  /** Requested by prefetch (so an arrival of it counts). */
  private readonly requested: SparseBits;
  /** Arrived as part of the background push (onArrived's byPush). */
  private readonly pushed: SparseBits;
  private window: number;
  /** Current estimate of config.fetchLatencyMs. */
  fetchLatencyMs: number;
  readonly stats: PrefetchStats;

  constructor(
    config: Partial<PrefetchConfig> & Pick<PrefetchConfig, 'blockCount' | 'blockSize' | 'areaBlocks'>,
    private readonly heat?: HeatMap,
    private readonly coAccess?: ReadonlyMap<number, readonly number[]>,
    /** The read-hot-first push, when there is one: whole-area prefetch yields to it. */
    private readonly frontier?: PushFrontier,
    /** Block → the block the VM read right after it at the source. */
    private readonly follows?: ReadonlyMap<number, number>,
  ) {
    this.config = { ...DEFAULT_PREFETCH, ...config };
    const c = this.config;
    this.window = Math.min(c.maxWindow, Math.max(c.minWindow, c.initialWindow));
    this.fetchLatencyMs = c.fetchLatencyMs;
    this.unread = new SparseBits(c.blockCount);
    this.requested = new SparseBits(c.blockCount);
    this.pushed = new SparseBits(c.blockCount);
    this.stats = { requestedBlocks: 0, streamBlocks: 0, areaBlocks: 0, coAccessBlocks: 0, hits: 0, late: 0, wastedBlocks: 0, droppedForBudget: 0, streams: 0, sequentialStreams: 0, window: this.window };
  }

  get outstandingBytes(): number {
    return this.outstanding.size * this.config.blockSize;
  }

  get wastedBytes(): number {
    return this.stats.wastedBlocks * this.config.blockSize;
  }

  /**
   * The VM read block `b`, which was `present` or not (a miss). Returns the
   * blocks to prefetch now, in priority order; only blocks `wanted` says yes to.
   * `sequential`, when the caller knows (read-continuity.ts), says whether the
   * read began exactly where an earlier one ended: only such reads move or
   * confirm a stream, and one opens a confirmed stream even over present
   * blocks (so the stream is read ahead before it reaches missing ones).
   * Without it, a read within two blocks after a stream's last counts.
   */
  onRead(b: number, present: boolean, now: number, wanted: (b: number) => boolean, sequential?: boolean): number[] {
    if (b < 0 || b >= this.config.blockCount) return [];
    this.expire(now);
    this.now = now;
    let hit = false;
    const askedAt = this.outstanding.get(b);
    if (this.unread.delete(b)) {
      this.stats.hits++;
      hit = true;
    } else if (askedAt !== undefined) {
      this.outstanding.delete(b);
      this.stats.late++;
    }
    const out = new Batch(this, wanted);
    const s = sequential === false ? undefined : this.findStream(b);
    if (s) {
      this.touch(s, now);
      // A reader the push feeds (the source started its push ahead of it: read-streams.ts) needs no read-ahead:
      // asking for its next blocks would only race the push for the same link, and the push is already ahead.
      if (b > s.last) s.fedByPush = present && this.pushed.has(b);
      if (b > s.last && s.fedByPush) {
        s.advanced += b - s.last;
        s.last = b;
      } else if (b > s.last) {
        s.advanced += b - s.last;
        s.last = b;
        if (!s.confirmed) {
          s.confirmed = true;
          this.stats.sequentialStreams++;
          // The neighbours a miss fetched were read: misses may fetch more of them.
          if (this.window > 0 && s.ahead >= b) this.setWindow(this.window * 2);
          // A sequential reader: it tries reading ahead by one block.
          s.window = Math.max(1, s.window);
        }
        if (askedAt !== undefined || hit) {
          // Read-ahead landed in time, or nearly, or the reader caught up with one asked for moments ago: a
          // sustained reader (it has run a fetch latency, see below) that needs more blocks in flight to stay
          // ahead. Read further ahead, but no further than the stream has come (short runs end soon).
          // Shrinking on an overtake instead left a reader slower than the link but faster than one block per
          // fetch latency at window 0 for good (the stream never asked again, so nothing could grow it back).
          s.window = Math.min(this.config.maxWindow, Math.max(1, s.window * 2), Math.max(1, s.advanced));
        }
        if (s.window > 0 && s.ahead - b < s.window / 2 + 1 && now - s.startedAt >= this.fetchLatencyMs) this.extend(s, out);
      }
    } else if (sequential) {
      const ns: Stream = { last: b, startedAt: now, advanced: 0, window: Math.max(1, this.window), ahead: b, touchedAt: now, confirmed: true, fedByPush: false };
      this.addStream(ns);
      this.stats.sequentialStreams++;
    } else if (!present) {
      const ns: Stream = { last: b, startedAt: now, advanced: 0, window: this.window, ahead: b, touchedAt: now, confirmed: false, fedByPush: false };
      this.addStream(ns);
      this.extend(ns, out);
    }
    const fromStream = out.blocks.length;
    this.stats.streamBlocks += fromStream;
    if (!present) {
      const area = Math.floor(b / this.config.areaBlocks);
      if (this.heat && this.heat.reads(area, now) >= this.config.hotAreaReads && this.aheadOfPush(area, now)) out.area(area);
      const fromArea = out.blocks.length;
      this.stats.areaBlocks += fromArea - fromStream;
      for (let x = b, hop = 0; this.follows && hop < this.config.followHops; hop++) {
        const next = this.follows.get(x);
        if (next === undefined || next === b) break;
        out.block(next);
        x = next;
      }
      const partners = this.coAccess?.get(area);
      if (partners) for (const p of partners.slice(0, this.config.maxCoAreas)) if (this.aheadOfPush(p, now)) out.area(p);
      this.stats.coAccessBlocks += out.blocks.length - fromArea;
    }
    return out.blocks;
  }

  /** Without a hot-ordered push every area is worth fetching ahead; with one, only those hotter than its frontier. */
  private aheadOfPush(area: number, now: number): boolean {
    return !this.frontier || this.frontier.worthPrefetching(area, this.heat?.reads(area, now) ?? 0);
  }

  /** Block `b` arrived (any reason); `byPrefetch` when it came as the answer to a prefetch, `byPush` with the background push. */
  onArrived(b: number, byPrefetch: boolean, byPush = false): void {
    if (b < 0 || b >= this.config.blockCount) return;
    if (byPush) this.pushed.add(b);
    const was = this.outstanding.delete(b);
    if (byPrefetch && was && this.requested.has(b)) this.unread.add(b);
  }

  /** Post-copy is over: prefetched blocks never read are waste. Returns wasted blocks. */
  finish(): number {
    this.stats.wastedBlocks += this.unread.count;
    this.unread.clearAll();
    this.outstanding.clear();
    return this.stats.wastedBlocks;
  }

  /** @internal Batch: try to take block `b` into a request. */
  take(b: number, wanted: (b: number) => boolean, into: number[], seen: Set<number>): 'ok' | 'skip' | 'full' {
    if (b < 0 || b >= this.config.blockCount || seen.has(b) || this.outstanding.has(b) || !wanted(b)) return 'skip';
    if ((this.outstanding.size + 1) * this.config.blockSize > this.config.maxOutstandingBytes) {
      this.stats.droppedForBudget++;
      return 'full';
    }
    seen.add(b);
    into.push(b);
    this.outstanding.set(b, this.now);
    this.requested.add(b);
    this.stats.requestedBlocks++;
    return 'ok';
  }

  private extend(s: Stream, out: Batch): void {
    const to = Math.min(this.config.blockCount - 1, s.last + s.window);
    for (let x = Math.max(s.ahead + 1, s.last + 1); x <= to; x++) {
      const r = out.block(x);
      if (r === 'full') break;
      // A block we skip (present, already coming) still counts as covered.
      s.ahead = x;
    }
  }

  /** The stream `b` continues: the block it last read, or one of the next two (random reads nearby do not count). */
  private findStream(b: number): Stream | undefined {
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const s = this.streams[i]!;
      if (b >= s.last && b <= s.last + 2) return s;
    }
    return undefined;
  }

  private touch(s: Stream, now: number): void {
    s.touchedAt = now;
    const i = this.streams.indexOf(s);
    if (i !== this.streams.length - 1) {
      this.streams.splice(i, 1);
      this.streams.push(s);
    }
  }

  private addStream(s: Stream): void {
    this.streams.push(s);
    this.stats.streams++;
    if (this.streams.length > this.config.maxStreams) this.retire(this.streams.shift()!);
  }

  private expire(now: number): void {
    while (this.streams.length && now - this.streams[0]!.touchedAt > this.config.staleMs) this.retire(this.streams.shift()!);
  }

  /** A stream ends: blocks it fetched ahead that were never read mean the window was too wide. */
  private retire(s: Stream): void {
    let unread = 0;
    for (let x = s.last + 1; x <= s.ahead; x++) if (this.unread.has(x) || this.outstanding.has(x)) unread++;
    if (unread > 0) this.setWindow(Math.floor(this.window / 2));
  }

  private setWindow(w: number): void {
    this.window = Math.floor(Math.min(this.config.maxWindow, Math.max(this.config.minWindow, w)));
    this.stats.window = this.window;
  }
}

/** One decision's request list: no duplicates, stops taking once the budget is full. */
class Batch {
  readonly blocks: number[] = [];
  private readonly seen = new Set<number>();
  private full = false;

  constructor(private readonly p: PrefetchPolicy, private readonly wanted: (b: number) => boolean) {}

  block(b: number): 'ok' | 'skip' | 'full' {
    if (this.full) return 'full';
    const r = this.p.take(b, this.wanted, this.blocks, this.seen);
    if (r === 'full') this.full = true;
    return r;
  }

  area(a: number): void {
    const n = this.p.config.areaBlocks;
    for (let b = a * n; b < (a + 1) * n && !this.full; b++) this.block(b);
  }
}
