/**
 * The simulator's modelled disk: per block, a content id (0 = all zero) and a
 * modelled zstd size, and no bytes. A block-aligned read stamps each block's
 * token (content-model.ts) at the block's start in the caller's buffer and
 * leaves the rest untouched; a write takes block tokens as the blocks' new
 * content (the target applying DATA) and write tokens as a workload write
 * (new ids derived from the old id, the workload's tag and the byte range).
 * So an engine read → send → apply → read again round-trips the identity
 * exactly, at a cost per block, not per byte.
 *
 * The VM's reads get a buffer with tokens where whole blocks are read and
 * junk elsewhere: the simulated VM does not check read content (the real-agent
 * tests do); identities are checked by the migration's own Merkle root.
 */
import { checkRange } from '../block/range.ts';
import { ExtentFlags, fullCapabilities, DEFAULT_BLOCK_SIZE_HINT, type Disk, type Extent } from '../block/disk.ts';
import { Kind, mixId, readToken, stamp } from './content-model.ts';
import { CONTENT_PERIOD } from '../workload/content.ts';

/** Tag the zeroing of part of a block mixes in. */
const ZERO_TAG = 0xfffffffe;

export class SimDisk implements Disk {
  readonly size: number;
  readonly capabilities = fullCapabilities({ canMultiConn: false });
  readonly blockSize = DEFAULT_BLOCK_SIZE_HINT;
  readonly blocks: number;
  /** Content id per block; 0 = all zero. */
  readonly ids: Float64Array;
  /** Modelled zstd size per block; 0 = incompressible. */
  readonly zsizes: Uint32Array;

  constructor(size: number, readonly unit: number) {
    this.size = size;
    this.blocks = Math.ceil(size / unit);
    this.ids = new Float64Array(this.blocks);
    this.zsizes = new Uint32Array(this.blocks);
  }

  /** Copies another model's content (the target starting as an old copy, a replica). */
  copyFrom(other: SimDisk): void {
    this.ids.set(other.ids);
    this.zsizes.set(other.zsizes);
  }

  private blockLen(b: number): number {
    return Math.min(this.unit, this.size - b * this.unit);
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    checkRange(this.size, offset, into.length, false);
    const first = Math.ceil(offset / this.unit);
    for (let b = first; b * this.unit < offset + into.length && b < this.blocks; b++) {
      stamp(into, b * this.unit - offset, Kind.BLOCK, this.ids[b]!, this.zsizes[b]!);
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, true);
    const end = offset + data.length;
    const w = readToken(data);
    for (let b = Math.floor(offset / this.unit); b * this.unit < end; b++) {
      const bs = b * this.unit;
      const from = Math.max(offset, bs);
      const to = Math.min(end, bs + this.blockLen(b));
      const whole = from === bs && to === bs + this.blockLen(b);
      const t = whole ? readToken(data, bs - offset) : undefined;
      if (t && t.kind === Kind.BLOCK) {
        this.ids[b] = t.id;
        this.zsizes[b] = t.zsize;
        continue;
      }
      const tag = w && w.kind === Kind.WRITE ? w.id : ZERO_TAG - 1;
      if (whole) {
        // The workload's content is a function of (tag, position mod 1 MiB): copies of one tag match.
        this.ids[b] = mixId(1, tag, bs % CONTENT_PERIOD);
        this.zsizes[b] = 0;
      } else {
        this.ids[b] = mixId(2, this.ids[b]!, tag, from - bs, to - from, from - offset);
        // Fresh workload bytes are random: they add their length to what a compressor would emit.
        const z = this.zsizes[b]!;
        this.zsizes[b] = z && z + (to - from) < this.blockLen(b) - (this.blockLen(b) >> 5) ? z + (to - from) : 0;
      }
    }
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, true);
    const end = offset + length;
    for (let b = Math.floor(offset / this.unit); b * this.unit < end; b++) {
      const bs = b * this.unit;
      const from = Math.max(offset, bs);
      const to = Math.min(end, bs + this.blockLen(b));
      if ((from === bs && to === bs + this.blockLen(b)) || this.ids[b] === 0) {
        this.ids[b] = 0;
        this.zsizes[b] = 0;
      } else {
        this.ids[b] = mixId(2, this.ids[b]!, ZERO_TAG, from - bs, to - from, 0);
      }
    }
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async flush(): Promise<void> {}
  async cache(): Promise<void> {}
  async close(): Promise<void> {}

  /** Zero runs as holes, at block granularity. */
  async extents(offset: number, length: number, maxExtents = 1 << 20): Promise<Extent[]> {
    checkRange(this.size, offset, length, false);
    const out: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    while (pos < end && out.length < maxExtents) {
      const b = Math.floor(pos / this.unit);
      const zero = this.ids[b] === 0;
      let nb = b + 1;
      while (nb < this.blocks && nb * this.unit < end && (this.ids[nb] === 0) === zero) nb++;
      const stop = Math.min(end, nb * this.unit, this.size);
      out.push({ offset: pos, length: stop - pos, flags: zero ? ExtentFlags.HOLE | ExtentFlags.ZERO : 0 });
      pos = stop;
    }
    return out;
  }

  /** Blocks whose content id is not zero. */
  get dataBlocks(): number {
    let n = 0;
    for (let b = 0; b < this.blocks; b++) if (this.ids[b] !== 0) n++;
    return n;
  }
}
