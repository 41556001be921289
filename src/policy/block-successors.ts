/**
 * Which block the VM reads right after which, at block grain, learned from
 * the order of its reads at the source (issue 18, "prefetch that follows
 * files"). A file system reads an inode or directory block, then the file's
 * data somewhere else; a job re-reads the same files in the same order. Such
 * jumps are what sequential read-ahead cannot follow and area co-access
 * (co-access.ts, 1 MiB grain) only blurs.
 *
 * A successor is recorded when a read begins somewhere other than right after
 * the previous read (sequential continuation is read-ahead's job) within
 * `windowMs` of it. Each block keeps one successor with a Misra-Gries count
 * (the same successor again: +1; another: -1, replaced at 0), so one-off
 * coincidences fade and repeated jumps stay. At the target a miss on a block
 * prefetches its learned successors, a few hops along the chain
 * (prefetch.ts).
 *
 * Bounded and pure: at most `maxBlocks` entries (least recently updated
 * dropped first), O(1) per read; time comes in as `now` (ms).
 *
 * Parameters, fixed from the mechanism: windowMs 50 (one guest I/O's think
 * time; a jump after a longer pause is a new task, not the same file walk),
 * maxBlocks 65 536 (about 3 MB), and a successor counts once seen twice.
 */

export interface BlockSuccessorsOptions {
  windowMs?: number;
  maxBlocks?: number;
}

interface Entry {
  next: number;
  n: number;
}

export class BlockSuccessors {
  private readonly windowMs: number;
  private readonly maxBlocks: number;
  private readonly map = new Map<number, Entry>();
  private last = -1;
  private lastAt = -Infinity;

  constructor(o: BlockSuccessorsOptions = {}) {
    this.windowMs = o.windowMs ?? 50;
    this.maxBlocks = Math.max(1, o.maxBlocks ?? 65_536);
  }

  get size(): number {
    return this.map.size;
  }

  /** A read of blocks first..last at `now`. */
  observe(first: number, last: number, now: number): void {
    const from = this.last;
    const jump = from >= 0 && now - this.lastAt <= this.windowMs && (first < from || first > from + 1);
    this.last = last;
    this.lastAt = now;
    if (!jump) return;
    let e = this.map.get(from);
    if (e) this.map.delete(from); // re-inserted below: Map order is recency of update
    if (!e) e = { next: first, n: 1 };
    else if (e.next === first) e.n++;
    else if (--e.n <= 0) e = { next: first, n: 1 };
    this.map.set(from, e);
    if (this.map.size > this.maxBlocks) this.map.delete(this.map.keys().next().value!);
  }

  /** The successor of `block` seen at least `minCount` times (net), or undefined. */
  next(block: number, minCount = 2): number | undefined {
    const e = this.map.get(block);
    return e && e.n >= minCount ? e.next : undefined;
  }

  /** Up to `limit` confirmed (block, successor) pairs, most recently updated first, for the cut-over hand-off. */
  export(limit: number, minCount = 2): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const entries = [...this.map.entries()];
    for (let i = entries.length - 1; i >= 0 && out.length < limit; i--) {
      const [b, e] = entries[i]!;
      if (e.n >= minCount) out.push([b, e.next]);
    }
    return out;
  }
}
