import { ExtentFlags, type Disk } from '../block/disk.ts';
import { REAL_CONTENT_MODEL, type ContentModel } from '../content/content-id.ts';
import type { ContentIndex, IndexedFormat } from './replica-index.ts';
import { openImage } from '../image/open-image.ts';
import { log } from '../util/log.ts';

/** Bytes read per request while scanning (whole blocks). */
const SCAN_CHUNK = 4 << 20;

/**
 * Calls `onBlock` with the content id of every non-zero block of a disk, in
 * order. Holes are skipped without reading; zero blocks without hashing.
 */
export async function scanBlocks(disk: Disk, blockSize: number, content: ContentModel, onBlock: (block: number, id: Buffer) => void | Promise<void>, onProgress?: (done: number) => void): Promise<void> {
  const chunk = Math.max(blockSize, Math.floor(SCAN_CHUNK / blockSize) * blockSize);
  const buf = Buffer.allocUnsafe(chunk);
  let pos = 0;
  while (pos < disk.size) {
    const len = Math.min(chunk, disk.size - pos);
    if (disk.capabilities.canExtents) {
      const [e] = await disk.extents(pos, len, 1);
      if (e && (e.flags & ExtentFlags.ZERO) !== 0) {
        // Skip whole blocks of the hole only; a partial block is read below.
        const end = Math.min(e.offset + e.length, pos + len);
        const skipTo = Math.max(pos, Math.floor(end / blockSize) * blockSize);
        if (skipTo > pos) {
          pos = skipTo;
          onProgress?.(pos);
          continue;
        }
      }
    }
    const view = buf.subarray(0, len);
    await disk.read(pos, view);
    for (let o = 0; o < len; o += blockSize) {
      const b = view.subarray(o, Math.min(len, o + blockSize));
      if (content.isZero(b)) continue;
      await onBlock((pos + o) / blockSize, content.id(b));
    }
    pos += len;
    onProgress?.(pos);
  }
}

export interface IndexAddResult {
  path: string;
  size: number;
  blockSize: number;
  scannedBlocks: number;
  newIds: number;
  ms: number;
}

/**
 * Registers a local image in the index (`flimcd index add`): every non-zero
 * block's id → (image, offset). A qcow2 image is read through its backing
 * chain (what a VM on it reads), and is reopened that way when a block is used.
 */
export async function indexImage(index: ContentIndex, path: string, blockSize: number, onProgress?: (done: number, total: number) => void, format: IndexedFormat = 'raw', content: ContentModel = REAL_CONTENT_MODEL): Promise<IndexAddResult> {
  const opened = await openImage({ spec: { kind: 'file', path, format }, writable: false, log, flag: 'image' });
  try {
    // A file on disk holds real bytes.
    return await indexDisk(index, path, opened.disk, blockSize, content, onProgress, format);
  } finally {
    await opened.close();
  }
}

/**
 * Registers the content of an open disk under `path`, naming it with the runtime's
 * content ids (the simulator registers a modelled base image this way).
 */
export async function indexDisk(index: ContentIndex, path: string, disk: Disk, blockSize: number, content: ContentModel, onProgress?: (done: number, total: number) => void, format?: IndexedFormat): Promise<IndexAddResult> {
  const t = performance.now();
  const image = await index.ensureImage(path, { size: disk.size, blockSize, kind: 'registered', format, contentIds: content.format });
  let batch: Array<{ id: Buffer; offset: number }> = [];
  let scanned = 0;
  let added = 0;
  await scanBlocks(
    disk,
    blockSize,
    content,
    async (b, id) => {
      scanned++;
      batch.push({ id, offset: b * blockSize });
      if (batch.length >= 4096) {
        added += await index.addEntries(image, batch);
        batch = [];
      }
    },
    (done) => onProgress?.(done, disk.size),
  );
  if (batch.length) added += await index.addEntries(image, batch);
  await index.flushed();
  return { path: image.path, size: disk.size, blockSize, scannedBlocks: scanned, newIds: added, ms: performance.now() - t };
}
