import type { Disk } from '../block/disk.ts';
import { ExtentFlags } from '../block/disk.ts';
import { blockId, zeroContentId, type ContentModel } from '../content/content-id.ts';
import { MerkleBuilder } from '../content/merkle.ts';
import type { Bitmap } from '../util/bitmap.ts';

const ID_BYTES = 32;
/** Most extents asked for per extents() call (the walk goes on from where an answer ends). */
const EXTENTS_PER_CALL = 4096;

/** What the walk needs of an image: its size, its allocation and reads. */
export type ImageReader = Pick<Disk, 'size' | 'capabilities' | 'extents' | 'read'>;

/**
 * Content ids of the blocks the VM wrote at the target, as WRITTEN batches
 * bring them (ascending block order): 36 bytes per such block, in two typed
 * arrays that double as they fill, never an object per block.
 */
export class TargetWriteIds {
  private blocks = new Uint32Array(1024);
  private ids = Buffer.allocUnsafe(1024 * ID_BYTES);
  private n = 0;

  get count(): number {
    return this.n;
  }

  append(blocks: Uint32Array, ids: Buffer): void {
    if (blocks.length && this.n && blocks[0]! <= this.blocks[this.n - 1]!) throw new RangeError('WRITTEN batches are not in ascending block order');
    while (this.n + blocks.length > this.blocks.length) {
      const b = new Uint32Array(this.blocks.length * 2);
      b.set(this.blocks.subarray(0, this.n));
      this.blocks = b;
      const i = Buffer.allocUnsafe(this.ids.length * 2);
      this.ids.copy(i, 0, 0, this.n * ID_BYTES);
      this.ids = i;
    }
    this.blocks.set(blocks, this.n);
    ids.copy(this.ids, this.n * ID_BYTES, 0, blocks.length * ID_BYTES);
    this.n += blocks.length;
  }

  block(i: number): number {
    return this.blocks[i]!;
  }

  id(i: number): Buffer {
    return this.ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES);
  }
}

export interface ImageRootOptions {
  image: ImageReader;
  blockSize: number;
  content: ContentModel;
  /** Blocks whose id is given rather than read (the target's writes, at the source). */
  overrides?: TargetWriteIds;
  /** Blocks whose id the caller wants as the walk computes it (the target's writes, at the target). */
  report?: { blocks: Bitmap; onId: (block: number, id: Buffer) => void | Promise<void> };
}

/**
 * The Merkle root of an image, walking its allocation: ranges the image
 * reports as zero (holes) are never read or hashed (their blocks have the zero
 * block's id), so a 2 TiB sparse image costs what its data costs. Memory is
 * one block buffer and the builder's group hashes.
 */
export async function imageRoot(o: ImageRootOptions): Promise<Buffer> {
  const { image, blockSize: bs } = o;
  const n = Math.ceil(image.size / bs);
  // A short last block has its own zero id: it is always read.
  const fullBlocks = Math.floor(image.size / bs);
  const zeroId = zeroContentId(bs, o.content.format);
  const merkle = new MerkleBuilder(o.content.format);
  const buf = Buffer.allocUnsafe(bs);
  const ov = o.overrides;
  let oi = 0;

  const idOf = async (b: number, zero: boolean): Promise<Buffer> => {
    while (ov && oi < ov.count && ov.block(oi) < b) oi++;
    if (ov && oi < ov.count && ov.block(oi) === b) return ov.id(oi++);
    if (zero) return zeroId;
    const len = Math.min(bs, image.size - b * bs);
    const view = len === bs ? buf : buf.subarray(0, len);
    await image.read(b * bs, view);
    // Copied: the view is reused for the next block, and a model may return it.
    return Buffer.from(blockId(o.content, view));
  };
  const addBlock = async (b: number, zero: boolean): Promise<void> => {
    const id = await idOf(b, zero);
    merkle.add(id);
    if (o.report?.blocks.get(b)) await o.report.onId(b, id);
  };
  // The next reported block at or after the walk, looked up again only once the walk passes it (a
  // fresh scan per hole would cost the whole bitmap each time). A bit set behind the cached one
  // during the walk is a write after the walk took that block's id: the id taken is the content the
  // source has, so leaving it unreported is what the source's root expects.
  let nextReported = o.report ? o.report.blocks.nextSet(0) : -1;
  /** Blocks [first, end) lie wholly in holes: runs of the zero id, except blocks given or reported. */
  const addZeros = async (first: number, end: number): Promise<void> => {
    for (let at = first; at < end; ) {
      while (ov && oi < ov.count && ov.block(oi) < at) oi++;
      const nextOverride = ov && oi < ov.count ? ov.block(oi) : end;
      if (nextReported >= 0 && nextReported < at) nextReported = o.report!.blocks.nextSet(at);
      const r = nextReported;
      const stop = Math.min(end, nextOverride, r < 0 ? end : r);
      if (stop > at) {
        merkle.addRepeated(zeroId, stop - at);
        at = stop;
        continue;
      }
      await addBlock(at++, true);
    }
  };

  let b = 0;
  if (image.capabilities.canExtents) {
    for (let pos = 0; pos < image.size; ) {
      const ext = await image.extents(pos, image.size - pos, EXTENTS_PER_CALL);
      if (ext.length === 0) break;
      for (const e of ext) {
        const end = e.offset + e.length;
        if (e.flags & ExtentFlags.ZERO) {
          const zFirst = Math.max(b, Math.ceil(e.offset / bs));
          const zEnd = Math.min(Math.floor(end / bs), fullBlocks);
          if (zEnd > zFirst) {
            while (b < zFirst) await addBlock(b++, false);
            await addZeros(zFirst, zEnd);
            b = zEnd;
          }
        }
        pos = end;
      }
    }
  }
  while (b < n) await addBlock(b++, false);
  return merkle.root();
}
