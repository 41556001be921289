/**
 * The order in which the VM first read its blocks at the source, and where a
 * job that is reading them again has got to (issue 18, "use what the source
 * knows": a bounded log of first reads).
 *
 * A job that runs again (a walk of the tree, a backup, a build) reads its
 * files in the order it read them the first time: that order is the
 * directory's, not the disk's, and it jumps between areas. Heat says which
 * blocks were read, not in what order, and ranks what was read last (the
 * files the job has just finished with) above what it reads next. So when
 * the VM is re-reading logged blocks in their logged order at the cut-over,
 * `continuation()` names the blocks it first read right after the one it
 * re-read last, in that order: what the job reads next if it does what it
 * did before. A lone re-read (an inode table, a bitmap, a file read again)
 * says nothing of what comes next: only a replay counts, `minReplay`
 * re-reads each at most `gapSeq` log positions after the one before.
 *
 * Bounded and pure: at most `maxBlocks` blocks logged (the oldest first
 * reads drop out first), O(blocks of the read) per read, time as `now` (ms).
 *
 * Parameters, fixed from the mechanism (as read-streams.ts):
 * - maxBlocks 65 536 (4 GiB at 64 KiB blocks; about 2 MB): a job's read set;
 * - minReplay 4, gapSeq 16: four re-reads in logged order are a job's
 *   replay, not chance; a file system interleaves a few metadata reads
 *   with a file walk, which a gap of 16 positions lets through;
 * - activeMs 1000: a job that has not re-read anything for a second is not
 *   mid-run at the cut-over;
 * - limit 1024 blocks (64 MiB at 64 KiB): about what the push's first
 *   seconds cover, as read-streams.ts' cap, so one job cannot take the whole push.
 * Reads over more than `maxReadBlocks` (64) blocks are a scan, not a file walk, and are not logged.
 */

export interface ReadOrderOptions {
  maxBlocks?: number;
  maxReadBlocks?: number;
  minReplay?: number;
  gapSeq?: number;
}

export interface ReadOrderContinuation {
  /** A re-read within this long before `now` counts (ms). */
  activeMs?: number;
  /** Most blocks named. */
  limit?: number;
}

interface Replay {
  seq: number;
  at: number;
  n: number;
}

export class ReadOrder {
  private readonly maxBlocks: number;
  private readonly maxReadBlocks: number;
  private readonly minReplay: number;
  private readonly gapSeq: number;
  /** Ring of first-read blocks: slot seq % maxBlocks holds the seq-th block first read. */
  private readonly ring: Int32Array;
  /** Block → its sequence number in the log. */
  private readonly seqOf = new Map<number, number>();
  private head = 0;
  /** The replay followed: where along the log it has got to, when it last moved, how many re-reads moved it. */
  private main: Replay = { seq: -1, at: -Infinity, n: 0 };
  /** A replay starting elsewhere (the job may have moved on, or started again): replaces `main` once confirmed. */
  private other: Replay = { seq: -1, at: -Infinity, n: 0 };

  constructor(o: ReadOrderOptions = {}) {
    this.maxBlocks = Math.max(1, o.maxBlocks ?? 65_536);
    this.maxReadBlocks = Math.max(1, o.maxReadBlocks ?? 64);
    this.minReplay = Math.max(1, o.minReplay ?? 4);
    this.gapSeq = Math.max(1, o.gapSeq ?? 16);
    this.ring = new Int32Array(this.maxBlocks);
  }

  get size(): number {
    return this.seqOf.size;
  }

  /** A read of blocks first..last at `now`. */
  observe(first: number, last: number, now: number): void {
    if (last - first >= this.maxReadBlocks) return;
    let reread = -1;
    for (let b = first; b <= last; b++) {
      const s = this.seqOf.get(b);
      if (s !== undefined) {
        reread = Math.max(reread, s);
        continue;
      }
      const slot = this.head % this.maxBlocks;
      if (this.head >= this.maxBlocks) {
        const old = this.ring[slot]!;
        if (this.seqOf.get(old) === this.head - this.maxBlocks) this.seqOf.delete(old);
      }
      this.ring[slot] = b;
      this.seqOf.set(b, this.head++);
    }
    if (reread >= 0) this.reread(reread, now);
  }

  /**
   * A re-read of log position `s`. One just ahead of the replay moves it on; one at or a little
   * behind it (the same block read in pieces, a file read again) leaves it; any other (an inode
   * table, a bitmap, a directory read out of order) neither moves nor breaks it, but may be where
   * another replay begins.
   */
  private reread(s: number, now: number): void {
    const extends_ = (r: Replay) => s > r.seq && s <= r.seq + this.gapSeq;
    if (extends_(this.main)) this.main = { seq: s, at: now, n: this.main.n + 1 };
    else if (s <= this.main.seq && s > this.main.seq - this.gapSeq) this.main.at = now;
    else if (extends_(this.other)) {
      this.other = { seq: s, at: now, n: this.other.n + 1 };
      // Confirmed, it is what the VM does now: the one followed.
      if (this.other.n >= this.minReplay) [this.main, this.other] = [this.other, { seq: -1, at: -Infinity, n: 0 }];
    } else if (!(s <= this.other.seq && s > this.other.seq - this.gapSeq)) this.other = { seq: s, at: now, n: 1 };
  }

  /** The blocks first read after the one the VM re-read last, in first-read order (none if it re-read nothing lately). */
  continuation(now: number, o: ReadOrderContinuation = {}): number[] {
    const activeMs = o.activeMs ?? 1000;
    const limit = o.limit ?? 1024;
    if (now - this.main.at > activeMs || this.main.n < this.minReplay) return [];
    const out: number[] = [];
    for (let s = Math.max(this.main.seq + 1, this.head - this.maxBlocks); s < this.head && out.length < limit; s++) {
      const b = this.ring[s % this.maxBlocks]!;
      if (this.seqOf.get(b) === s) out.push(b);
    }
    return out;
  }
}
