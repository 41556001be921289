import { open } from 'node:fs/promises';
import { Prng } from './prng.ts';

/**
 * Generates a disk image whose content looks like a used VM disk rather than
 * all-zero or all-random: unallocated holes, text-like compressible data,
 * incompressible data (already-compressed files), and blocks repeated from a
 * small pool (the same library or package in many places). Deterministic for
 * a seed. The mix is documented so benchmarks can state what they measured.
 */
export interface ImageMix {
  /** Share of blocks left as holes (never written: sparse, read as zero). */
  zero: number;
  /** Share of blocks copied from a pool of common blocks. */
  duplicate: number;
  /** Share of blocks of text-like, compressible data. */
  text: number;
  /** The rest: random (incompressible) data. */
}

export const DEFAULT_MIX: ImageMix = { zero: 0.3, duplicate: 0.1, text: 0.4 };

export interface ImageStats {
  size: number;
  blockSize: number;
  zeroBlocks: number;
  duplicateBlocks: number;
  textBlocks: number;
  randomBlocks: number;
}

const WORDS = (
  'the of and to in is for on that by with this from as are be at or an it not kernel module block device ' +
  'file system mount root user home etc var lib usr bin share doc log cache config service daemon network ' +
  'packet socket buffer memory page table process thread signal handler error warning info debug trace'
).split(' ');

/** Text-like, compressible filler (words and spaces), as the generated images hold. */
export function fillText(buf: Buffer, rng: Prng): void {
  let p = 0;
  while (p < buf.length) {
    const w = WORDS[rng.int(WORDS.length)]!;
    p += buf.write(w, p, 'latin1');
    if (p < buf.length) buf[p++] = rng.int(12) === 0 ? 10 : 32;
  }
}

/** Writes a sparse image of `size` bytes at `path` (created or truncated). */
export async function generateImage(path: string, size: number, opts: { seed?: number; blockSize?: number; mix?: ImageMix } = {}): Promise<ImageStats> {
  const blockSize = opts.blockSize ?? 65536;
  const mix = opts.mix ?? DEFAULT_MIX;
  const rng = new Prng(opts.seed ?? 1);
  const pool: Buffer[] = [];
  for (let i = 0; i < 16; i++) {
    const b = Buffer.allocUnsafe(blockSize);
    if (i % 2) rng.fill(b);
    else fillText(b, rng);
    pool.push(b);
  }
  // Text blocks are rotated copies of a text corpus with a unique stamp: as
  // compressible as text, yet no two alike (so dedup finds nothing in them).
  const corpus = Buffer.allocUnsafe(blockSize * 4);
  fillText(corpus, rng);
  const stamp = Buffer.allocUnsafe(64);
  const stats: ImageStats = { size, blockSize, zeroBlocks: 0, duplicateBlocks: 0, textBlocks: 0, randomBlocks: 0 };
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    // Batch consecutive written blocks into one positional write of up to 4 MiB.
    const batch = Buffer.allocUnsafe(4 * 1024 * 1024);
    let batchStart = -1;
    let batchLen = 0;
    const flushBatch = async () => {
      if (batchLen > 0) await fh.write(batch, 0, batchLen, batchStart);
      batchLen = 0;
      batchStart = -1;
    };
    // Areas of 1 MiB share a character, as real file systems cluster data:
    // three blocks in four follow the area's kind, so the overall mix is kept.
    let areaDraw = 0;
    for (let off = 0; off < size; off += blockSize) {
      const len = Math.min(blockSize, size - off);
      if (off % (1 << 20) === 0) areaDraw = rng.next();
      const r = rng.next() < 0.75 ? areaDraw : rng.next();
      if (r < mix.zero) {
        stats.zeroBlocks++;
        await flushBatch();
        continue;
      }
      if (batchStart < 0) batchStart = off;
      const dst = batch.subarray(batchLen, batchLen + len);
      if (r < mix.zero + mix.duplicate) {
        pool[rng.int(pool.length)]!.copy(dst, 0, 0, len);
        stats.duplicateBlocks++;
      } else if (r < mix.zero + mix.duplicate + mix.text) {
        const rot = rng.int(corpus.length - len);
        corpus.copy(dst, 0, rot, rot + len);
        rng.fill(stamp);
        stamp.copy(dst, rng.int(Math.max(1, len - stamp.length)));
        stats.textBlocks++;
      } else {
        rng.fill(dst);
        stats.randomBlocks++;
      }
      batchLen += len;
      if (batchLen + blockSize > batch.length) await flushBatch();
    }
    await flushBatch();
  } finally {
    await fh.close();
  }
  return stats;
}
