import { resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';
import { DEFAULT_CONTENT_ID_FORMAT, UNNAMED_CONTENT_ID_FORMAT, type ContentIdFormat } from '../content/content-id.ts';

/** Where some content lies locally: a file and a byte offset. */
/** How an indexed image file is opened (absent: raw). */
export type IndexedFormat = 'raw' | 'qcow2';

export interface ReplicaLocation {
  path: string;
  offset: number;
  format?: IndexedFormat;
}

export interface IndexedImage {
  path: string;
  /** Small number that stands for the path inside id entries. */
  no: number;
  size: number;
  blockSize: number;
  /** Non-zero blocks whose ids this image contributed. */
  blocks: number;
  addedAt: string;
  /** `registered` by `flimcd index add`; `received` when a target recorded blocks as they arrived. */
  kind: 'registered' | 'received';
  /** A qcow2 image (read through qemu-storage-daemon, its backing chain included); absent for raw. */
  format?: IndexedFormat;
  /** Format of the ids recorded for it (src/content/content-id.ts); absent in indexes from before formats were named: `blake3`. */
  contentIds?: string;
}

/** What registering an image says about it. `contentIds` absent: the default format. */
export interface ImageMeta {
  size: number;
  blockSize: number;
  kind: IndexedImage['kind'];
  contentIds?: ContentIdFormat;
  format?: IndexedFormat;
}

/** An image's id format as recorded (absent: BLAKE3, the only one before formats were named). */
export function imageContentIds(im: IndexedImage): string {
  return im.contentIds ?? UNNAMED_CONTENT_ID_FORMAT;
}

/**
 * What users of an index need (LocalContent at the target, `indexImage`): the
 * LMDB-backed ReplicaIndex below, or MemoryReplicaIndex (memory-index.ts) where
 * nothing is persisted (the simulator).
 */
export interface ContentIndex {
  /** Total entries for a block size (an upper bound). */
  blockCount(blockSize: number): number;
  /** Registers an image (again: a new block size or id format starts it afresh). */
  ensureImage(path: string, meta: ImageMeta): Promise<IndexedImage>;
  addEntries(image: IndexedImage, entries: Array<{ id: Uint8Array; offset: number }>): Promise<number>;
  lookup(blockSize: number, id: Uint8Array): ReplicaLocation | undefined;
  forget(blockSize: number, id: Uint8Array): Promise<void>;
  /** Waits until every write so far is durable (at once where nothing is persisted). */
  flushed(): Promise<void>;
}

/** Keys hold the first 128 bits of a content id (enough to find; users re-hash what they find). */
export const ID_KEY_BYTES = 16;
const KEY_BYTES = 4 + ID_KEY_BYTES;
const VALUE_BYTES = 4 + 8;

function idKey(blockSize: number, id: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(KEY_BYTES);
  k.writeUInt32BE(blockSize, 0);
  if (id.length < ID_KEY_BYTES) throw new RangeError(`content id of ${id.length} bytes`);
  k.set(id.subarray(0, ID_KEY_BYTES), 4);
  return k;
}

function locValue(no: number, offset: number): Buffer {
  const v = Buffer.allocUnsafe(VALUE_BYTES);
  v.writeUInt32BE(no, 0);
  v.writeBigUInt64BE(BigInt(offset), 4);
  return v;
}

/**
 * The target's replica index: content id (per block size) → a place where that
 * content lies locally (a base image, an older copy, a block received earlier).
 * An embedded LMDB store, so it survives restarts and several agents can share
 * it. Entries are hints, not truth: files change after they are indexed, so
 * whoever uses a location re-hashes what it reads before trusting it.
 */
export class ReplicaIndex implements ContentIndex {
  private constructor(
    private readonly env: RootDatabase,
    private readonly ids: Database<Buffer, Buffer>,
    private readonly images: Database<IndexedImage, string>,
    readonly dir: string,
  ) {}

  static open(dir: string, opts: { readOnly?: boolean } = {}): ReplicaIndex {
    const path = resolve(dir);
    try {
      if (!opts.readOnly) mkdirSync(path, { recursive: true });
      const env = openLmdb({ path, readOnly: opts.readOnly ?? false, compression: false, maxDbs: 4, mapSize: 64 * 1024 ** 3 });
      const ids = env.openDB<Buffer, Buffer>({ name: 'ids', keyEncoding: 'binary', encoding: 'binary' });
      const images = env.openDB<IndexedImage, string>({ name: 'images', encoding: 'msgpack' });
      return new ReplicaIndex(env, ids, images, path);
    } catch (e) {
      throw new UsageError(`--index: cannot open the replica index at ${path}: ${(e as Error).message}`);
    }
  }

  /** Every image known, in order of registration. */
  list(): IndexedImage[] {
    return [...this.images.getRange({})].map((e) => e.value).sort((a, b) => a.no - b.no);
  }

  image(path: string): IndexedImage | undefined {
    return this.images.get(resolve(path));
  }

  /** Total entries for a block size (sum over images; an upper bound, ids are unique). */
  blockCount(blockSize: number): number {
    return countBlocks(this.list(), blockSize);
  }

  /** Registers (or re-registers) an image and returns its number. */
  async ensureImage(path: string, meta: ImageMeta): Promise<IndexedImage> {
    const p = resolve(path);
    const existing = this.images.get(p);
    if (existing && sameScheme(existing, meta)) return existing;
    const im = imageRecord(p, existing, this.list(), meta);
    await this.images.put(p, im);
    return im;
  }

  /** Adds entries for one image; existing entries for an id are kept (first location wins). Returns how many were new. */
  async addEntries(image: IndexedImage, entries: Array<{ id: Uint8Array; offset: number }>): Promise<number> {
    let added = 0;
    await this.ids.transaction(() => {
      for (const e of entries) {
        const k = idKey(image.blockSize, e.id);
        if (this.ids.doesExist(k)) continue;
        void this.ids.put(k, locValue(image.no, e.offset));
        added++;
      }
      const cur = this.images.get(image.path);
      if (cur) {
        cur.blocks += added;
        void this.images.put(image.path, cur);
        image.blocks = cur.blocks;
      }
    });
    return added;
  }

  /** Where content with this id lies, if known. */
  lookup(blockSize: number, id: Uint8Array): ReplicaLocation | undefined {
    const v = this.ids.get(idKey(blockSize, id));
    if (!v || v.length !== VALUE_BYTES) return undefined;
    const no = v.readUInt32BE(0);
    const offset = Number(v.readBigUInt64BE(4));
    const im = this.byNo(no);
    return im ? { path: im.path, offset, ...(im.format ? { format: im.format } : {}) } : undefined;
  }

  /** Every entry that points into an image (its ids cut to the key's 128 bits), in key order. */
  *entriesOf(image: IndexedImage): Generator<{ id: Buffer; offset: number }> {
    for (const { key, value } of this.ids.getRange({})) {
      if (value.length !== VALUE_BYTES || value.readUInt32BE(0) !== image.no || key.readUInt32BE(0) !== image.blockSize) continue;
      yield { id: Buffer.from(key.subarray(4)), offset: Number(value.readBigUInt64BE(4)) };
    }
  }

  /** A location proved wrong (the file changed): drop it so nobody tries it again. */
  async forget(blockSize: number, id: Uint8Array): Promise<void> {
    await this.ids.remove(idKey(blockSize, id));
  }

  /** Removes an image and every entry that points into it. Returns the number of entries removed. */
  async removeImage(path: string): Promise<number> {
    const p = resolve(path);
    const im = this.images.get(p);
    if (!im) throw new FlimcdError(`${p} is not in the index at ${this.dir}`, ErrorCode.NOT_INDEXED);
    let removed = 0;
    const doomed: Buffer[] = [];
    for (const { key, value } of this.ids.getRange({})) {
      if (value.readUInt32BE(0) === im.no) doomed.push(Buffer.from(key));
    }
    await this.ids.transaction(() => {
      for (const k of doomed) {
        void this.ids.remove(k);
        removed++;
      }
      void this.images.remove(p);
    });
    this.noCache.delete(im.no);
    return removed;
  }

  private readonly noCache = new Map<number, IndexedImage>();

  private byNo(no: number): IndexedImage | undefined {
    const c = this.noCache.get(no);
    if (c) return c;
    for (const im of this.list()) this.noCache.set(im.no, im);
    return this.noCache.get(no);
  }

  /** Waits until every write so far is on disk. */
  async flushed(): Promise<void> {
    await this.env.flushed;
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}

/** Entries for a block size over these images (an upper bound: ids are unique). */
export function countBlocks(images: Iterable<IndexedImage>, blockSize: number): number {
  let n = 0;
  for (const im of images) if (im.blockSize === blockSize) n += im.blocks;
  return n;
}

/** A (re-)registered image's record: it keeps its number, or takes the next free one. */
export function imageRecord(path: string, existing: IndexedImage | undefined, all: IndexedImage[], meta: ImageMeta): IndexedImage {
  const no = existing?.no ?? all.reduce((m, im) => Math.max(m, im.no), 0) + 1;
  return { path, no, size: meta.size, blockSize: meta.blockSize, blocks: 0, addedAt: new Date().toISOString(), kind: meta.kind, ...(meta.format && meta.format !== 'raw' ? { format: meta.format } : {}), contentIds: meta.contentIds ?? DEFAULT_CONTENT_ID_FORMAT };
}

/** An image record already holds entries of this block size and id format. */
export function sameScheme(im: IndexedImage, meta: ImageMeta): boolean {
  return im.blockSize === meta.blockSize && imageContentIds(im) === (meta.contentIds ?? DEFAULT_CONTENT_ID_FORMAT);
}
