/**
 * The sequential readers the source sees on the VM's disk, and where each
 * is headed when the cut-over comes (issue 18, "use what the source knows").
 *
 * A job that is reading its files front to back when the VM moves goes on
 * reading them at the target, often at the link's rate: every block it
 * reaches before the push does is a miss, and at that rate no push that
 * starts behind it catches up. The source saw where it was and how fast it
 * went, so its push can start just ahead of it: `continuations()` names the
 * blocks each active reader will want next, skipping the first `leadMs` worth
 * of them (the reader gets there before a pushed block could land; those it
 * fetches on demand), for up to `horizonMs` of its reading.
 *
 * Pure and bounded: at most `maxStreams` streams (least recently used
 * dropped), O(streams) per read. A read continues a stream when it starts at
 * most `gapBlocks` past the stream's next block (files laid out one after
 * another leave small gaps; a reader crossing them is still one reader).
 *
 * Parameters, fixed from the mechanism, not fitted to a workload:
 * - gapBlocks 2: free space between files of a few pages is under two 64 KiB blocks;
 * - minBlocks 8: a run of 8 blocks (512 KiB) is a file read front to back, not chance;
 * - minRunMs 100: a run read in one go (a burst of requests within a few ms) has no
 *   rate to go on and has most likely ended; a reader that has kept going for
 *   longer than a round trip or two is one that will keep going at the target;
 * - activeMs 1000: a reader that has not read for a second is not mid-run;
 * - horizonMs 10 000: about what the first push steps cover before the
 *   rest of the plan; capped at maxBlocks (1024 blocks, 64 MiB at 64 KiB)
 *   per stream so one fast reader cannot take the whole push.
 */

export interface ReadStreamsOptions {
  maxStreams?: number;
  gapBlocks?: number;
  minBlocks?: number;
  minRunMs?: number;
}

export interface ContinuationOptions {
  /** Streams read within this long before `now` count as active (ms). */
  activeMs?: number;
  /** Skip this much of each reader's path (ms at its rate): it gets there before a push lands. */
  leadMs: number;
  /** Cover this much of each reader's future reading (ms at its rate). */
  horizonMs?: number;
  /** Most blocks per stream. */
  maxBlocks?: number;
  /** Blocks in the image (the walk stops at its end). */
  blockCount: number;
}

interface Stream {
  first: number;
  /** The block after the last one read. */
  next: number;
  startedAt: number;
  lastAt: number;
  blocks: number;
}

export class ReadStreams {
  private readonly streams: Stream[] = []; // least recently used first
  private readonly maxStreams: number;
  private readonly gapBlocks: number;
  private readonly minBlocks: number;
  private readonly minRunMs: number;

  constructor(o: ReadStreamsOptions = {}) {
    this.maxStreams = Math.max(1, o.maxStreams ?? 16);
    this.gapBlocks = Math.max(0, o.gapBlocks ?? 2);
    this.minBlocks = Math.max(1, o.minBlocks ?? 8);
    this.minRunMs = Math.max(0, o.minRunMs ?? 100);
  }

  get size(): number {
    return this.streams.length;
  }

  /** A read of blocks first..last at `now`. */
  observe(first: number, last: number, now: number): void {
    const i = this.streams.findIndex((s) => first >= s.next - 1 && first <= s.next + this.gapBlocks);
    if (i >= 0) {
      const s = this.streams[i]!;
      if (last + 1 > s.next) {
        s.blocks += last + 1 - Math.max(first, s.next);
        s.next = last + 1;
      }
      s.lastAt = now;
      this.streams.splice(i, 1);
      this.streams.push(s);
      return;
    }
    this.streams.push({ first, next: last + 1, startedAt: now, lastAt: now, blocks: last - first + 1 });
    if (this.streams.length > this.maxStreams) this.streams.shift();
  }

  /** Each active reader's next blocks past its lead, most recent reader first (see the header). */
  continuations(now: number, o: ContinuationOptions): number[] {
    const activeMs = o.activeMs ?? 1000;
    const horizonMs = o.horizonMs ?? 10_000;
    const maxBlocks = o.maxBlocks ?? 1024;
    const out: number[] = [];
    const seen = new Set<number>();
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const s = this.streams[i]!;
      if (now - s.lastAt > activeMs || s.blocks < this.minBlocks || s.lastAt - s.startedAt < this.minRunMs) continue;
      // Blocks a millisecond, over the run so far.
      const rate = s.blocks / Math.max(1, s.lastAt - s.startedAt);
      const from = s.next + Math.ceil(rate * Math.max(0, o.leadMs));
      const to = Math.min(o.blockCount, from + Math.min(maxBlocks, Math.ceil(rate * horizonMs)));
      for (let b = from; b < to; b++) {
        if (seen.has(b)) continue;
        seen.add(b);
        out.push(b);
      }
    }
    return out;
  }
}
