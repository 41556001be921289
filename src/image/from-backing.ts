/**
 * from_backing: the blocks of a qcow2 overlay that its top layer does not
 * allocate come from the backing chain. When the target's base holds the same
 * content (checked by the base's Merkle root over block content ids, computed
 * on each side and compared at the handshake), those blocks are neither read,
 * hashed nor sent. The map only shrinks: any write to a block takes it out.
 */
import { existsSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Extent, WriteOptions, ZeroOptions } from '../block/disk.ts';
import { FilterDisk } from '../block/filter.ts';
import type { Disk } from '../block/disk.ts';
import { blockId, type ContentModel } from '../content/content-id.ts';
import { merkleRoot } from '../content/merkle.ts';
import { Bitmap } from '../util/bitmap.ts';
import type { ImageFormat } from './image-spec.ts';
import { openImage } from './open-image.ts';
import { baseRootKey, type BaseRoots } from './base-roots.ts';

/** Depth 2 and more: the range reads from a backing file (qemu:allocation-depth). */
const BACKING_DEPTH = 2;
const ROOT_CACHE = 'backing-root.json';

/** Where a base's root is cached: the agent's state directory (src/migrate/state-dir.ts). */
export interface RootCache {
  readonly path: string;
  readJson<T>(name: string): T | undefined;
  writeJson(name: string, value: unknown): void;
}

/** Blocks wholly served by the backing chain, from the image's allocation depth. Ranges past the last extent answer count as not from backing. */
export async function backingBlocks(depth: (offset: number, length: number) => Promise<Extent[]>, size: number, blockSize: number): Promise<Bitmap> {
  const n = Math.ceil(size / blockSize);
  const map = new Bitmap(n);
  // A block is from backing unless some byte of it is not: mark all, then clear what any other extent touches.
  map.setAll();
  let pos = 0;
  while (pos < size) {
    const ext = await depth(pos, Math.min(size - pos, 1 << 30));
    if (ext.length === 0) break;
    for (const e of ext) {
      if (e.flags < BACKING_DEPTH) {
        const last = Math.floor((e.offset + e.length - 1) / blockSize);
        for (let b = Math.floor(e.offset / blockSize); b <= last; b++) map.clear(b);
      }
      pos = e.offset + e.length;
    }
  }
  if (pos < size) for (let b = Math.floor(pos / blockSize); b < n; b++) map.clear(b);
  return map;
}

/** A base image, cut into `blockSize` blocks hashed with `runtime`'s ids. */
interface BaseFile {
  file: string;
  format: ImageFormat;
  blockSize: number;
  state: RootCache;
  runtime: { content: ContentModel };
  log: Logger;
  storageDaemon?: string;
}

/**
 * The Merkle root of a base image (with its own chain) in `blockSize` blocks.
 * Read and hashed once per base, block size and id format: `roots` keeps it
 * by the file's identity for the agents of this process, and the state
 * directory keeps it across restarts (a base is immutable while overlays use it).
 */
export async function baseRoot(o: BaseFile & { roots: BaseRoots }): Promise<string> {
  const key = baseRootKey(statSync(o.file), o.blockSize, o.runtime.content.format);
  const root = await o.roots.get(key, async () => {
    const cached = o.state.readJson<{ key?: string; root: string }>(ROOT_CACHE);
    return cached?.key === key ? cached.root : hashBase(o);
  });
  if (existsSync(o.state.path) && o.state.readJson<{ key?: string }>(ROOT_CACHE)?.key !== key) o.state.writeJson(ROOT_CACHE, { key, file: o.file, root });
  return root;
}

async function hashBase(o: BaseFile): Promise<string> {
  const opened = await openImage({ spec: { kind: 'file', path: o.file, format: o.format }, writable: false, socketDir: o.state.path, storageDaemon: o.storageDaemon, log: o.log, flag: 'backing file' });
  try {
    const disk = opened.disk;
    const n = Math.ceil(disk.size / o.blockSize);
    const ids = new Array<Buffer>(n);
    const buf = Buffer.allocUnsafe(o.blockSize);
    for (let b = 0; b < n; b++) {
      const len = Math.min(o.blockSize, disk.size - b * o.blockSize);
      const view = len === o.blockSize ? buf : buf.subarray(0, len);
      await disk.read(b * o.blockSize, view);
      ids[b] = blockId(o.runtime.content, view);
    }
    const root = merkleRoot(ids).toString('hex');
    o.log.info({ base: o.file, blocks: n, root }, 'hashed the backing file once (cached by its identity)');
    return root;
  } finally {
    await opened.close();
  }
}

/** Below the source's tracking filter: a write, zero or trim takes its blocks out of the from-backing map before it reaches the image. */
export class FromBackingFilter extends FilterDisk {
  constructor(inner: Disk, readonly map: Bitmap, private readonly trackBlockSize: number) {
    super(inner);
  }

  private touch(offset: number, length: number): void {
    if (length === 0) return;
    const last = Math.floor((offset + length - 1) / this.trackBlockSize);
    for (let b = Math.floor(offset / this.trackBlockSize); b <= last; b++) this.map.clear(b);
  }

  override write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.touch(offset, data.length);
    return super.write(offset, data, opts);
  }

  override writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    this.touch(offset, length);
    return super.writeZeroes(offset, length, opts);
  }

  override trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    this.touch(offset, length);
    return super.trim(offset, length, opts);
  }
}
