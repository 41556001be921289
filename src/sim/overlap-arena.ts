/**
 * Buffers for modelled blocks without the bytes a modelled block never uses.
 *
 * A modelled block (content-model.ts) has its real length but only its first
 * bytes (the token) mean anything; the rest is filler no one reads or writes.
 * Allocating 64 KiB per block moved through the simulator is most of its
 * cost (allocation, page faults and the garbage collections that external
 * memory triggers). An arena hands out buffers whose *carried* bytes (the
 * first `carried`) are private and whose filler overlaps the buffers handed
 * out after it: many blocks' worth of buffers from one slab.
 *
 * Safe only for buffers whose readers and writers touch the carried bytes and
 * nothing past them: the simulator's link (frames holding a modelled block)
 * and its codec model (decompressed modelled blocks). Slabs are never reused:
 * a buffer kept for long keeps its slab alive, nothing more.
 */
const ALIGN = 8;

export class OverlapArena {
  private slab: Buffer | undefined;
  private pos = 0;

  /**
   * @param maxLength longest buffer served from a slab (longer ones get their own allocation)
   * @param startsBytes bytes of a slab in which buffers may start (carried bytes per slab)
   */
  constructor(private readonly maxLength: number, private readonly startsBytes = 1 << 20) {}

  /** A buffer of `length` bytes whose first `carried` bytes overlap no other buffer from this arena. */
  take(length: number, carried: number): Buffer {
    if (length > this.maxLength || carried >= length) return Buffer.allocUnsafe(length);
    if (!this.slab || this.pos >= this.startsBytes) {
      this.slab = Buffer.allocUnsafeSlow(this.startsBytes + this.maxLength);
      this.pos = 0;
    }
    const out = this.slab.subarray(this.pos, this.pos + length);
    this.pos += Math.ceil(Math.max(carried, 1) / ALIGN) * ALIGN;
    return out;
  }
}
