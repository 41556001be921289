import type { Disk, WriteOptions } from './disk.ts';

/** Total bytes of a chunk list. */
export function chunksLength(chunks: readonly Uint8Array[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/** One buffer holding the chunks in order; a single chunk is returned as is (no copy). */
export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = Buffer.allocUnsafe(chunksLength(chunks));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Writes the chunks, in order, at `offset` as one request: the disk's writev
 * when it has one (no copy), else write() of the joined bytes.
 */
export function writeChunks(disk: Disk, offset: number, chunks: readonly Uint8Array[], opts?: WriteOptions): Promise<void> {
  if (chunks.length === 1) return disk.write(offset, chunks[0]!, opts);
  if (disk.writev) return disk.writev(offset, chunks, opts);
  return disk.write(offset, joinChunks(chunks), opts);
}
