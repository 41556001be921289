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
  /** The furthest logged position the latest re-read reached, and when. */
  private rereadSeq = -1;
  private rereadAt = -Infinity;
  /** Re-reads in a row, each a little further along the log. */
  private replay = 0;

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
    if (reread >= 0) {
      // The same block again (a file read in pieces smaller than a block) neither extends nor breaks a replay.
      if (reread !== this.rereadSeq) this.replay = reread > this.rereadSeq && reread <= this.rereadSeq + this.gapSeq ? this.replay + 1 : 1;
      this.rereadSeq = reread;
      this.rereadAt = now;
    }
  }

  /** The blocks first read after the one the VM re-read last, in first-read order (none if it re-read nothing lately). */
  continuation(now: number, o: ReadOrderContinuation = {}): number[] {
    const activeMs = o.activeMs ?? 1000;
    const limit = o.limit ?? 1024;
    if (now - this.rereadAt > activeMs || this.replay < this.minReplay) return [];
    const out: number[] = [];
    for (let s = Math.max(this.rereadSeq + 1, this.head - this.maxBlocks); s < this.head && out.length < limit; s++) {
      const b = this.ring[s % this.maxBlocks]!;
      if (this.seqOf.get(b) === s) out.push(b);
    }
    return out;
  }
}
