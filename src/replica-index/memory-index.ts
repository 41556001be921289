import { resolve } from 'node:path';
import { ID_KEY_BYTES, countBlocks, imageRecord, sameScheme, type ContentIndex, type ImageMeta, type IndexedImage, type ReplicaLocation } from './replica-index.ts';

/**
 * A replica index held in memory, with the LMDB index's semantics (first
 * location of an id wins, keys are the first 128 bits of the id per block
 * size, `blocks` counts new ids per image). Nothing survives the process: the
 * simulator uses it so the target's LocalContent runs its real lookup path
 * against a modelled base image without touching disk.
 */
export class MemoryReplicaIndex implements ContentIndex {
  private readonly images = new Map<string, IndexedImage>();
  private readonly byNo = new Map<number, IndexedImage>();
  private readonly ids = new Map<string, { no: number; offset: number }>();

  private static key(blockSize: number, id: Uint8Array): string {
    if (id.length < ID_KEY_BYTES) throw new RangeError(`content id of ${id.length} bytes`);
    return `${blockSize}:${Buffer.from(id.buffer, id.byteOffset, ID_KEY_BYTES).toString('base64')}`;
  }

  list(): IndexedImage[] {
    return [...this.images.values()].sort((a, b) => a.no - b.no);
  }

  blockCount(blockSize: number): number {
    return countBlocks(this.images.values(), blockSize);
  }

  async ensureImage(path: string, meta: ImageMeta): Promise<IndexedImage> {
    const p = resolve(path);
    const existing = this.images.get(p);
    if (existing && sameScheme(existing, meta)) return existing;
    const im = imageRecord(p, existing, this.list(), meta);
    this.images.set(p, im);
    this.byNo.set(im.no, im);
    return im;
  }

  async addEntries(image: IndexedImage, entries: Array<{ id: Uint8Array; offset: number }>): Promise<number> {
    let added = 0;
    for (const e of entries) {
      const k = MemoryReplicaIndex.key(image.blockSize, e.id);
      if (this.ids.has(k)) continue;
      this.ids.set(k, { no: image.no, offset: e.offset });
      added++;
    }
    const cur = this.images.get(image.path);
    if (cur) {
      cur.blocks += added;
      image.blocks = cur.blocks;
    }
    return added;
  }

  lookup(blockSize: number, id: Uint8Array): ReplicaLocation | undefined {
    const v = this.ids.get(MemoryReplicaIndex.key(blockSize, id));
    if (!v) return undefined;
    const im = this.byNo.get(v.no);
    return im ? { path: im.path, offset: v.offset, ...(im.format ? { format: im.format } : {}) } : undefined;
  }

  async forget(blockSize: number, id: Uint8Array): Promise<void> {
    this.ids.delete(MemoryReplicaIndex.key(blockSize, id));
  }

  async flushed(): Promise<void> {}
}
