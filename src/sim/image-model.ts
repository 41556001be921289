/**
 * Where a simulated image's content comes from:
 * - `scanImage`: a real image file, block by block — zero blocks, content ids
 *   (the first 52 bits of BLAKE3, so equal blocks stay equal) and each block's
 *   real zstd size. The validation test scans the very image the real agents
 *   migrate, so both runs see the same content.
 * - `syntheticImage`: a model of what src/workload/image-gen.ts writes (same
 *   mix, same 1 MiB area clustering, a pool of 16 repeated blocks, text blocks
 *   compressible by the ratio zstd reaches on image-gen's text), without bytes:
 *   a 20 GiB image costs a few milliseconds.
 */
import { SimDisk } from './sim-disk.ts';
import { mixId } from './content-model.ts';
import { contentId, isZero } from '../content/content-id.ts';
import { BlockCompressor } from '../wire/block-codec.ts';
import { DEFAULT_MIX, fillText, type ImageMix } from '../workload/image-gen.ts';
import { Prng } from '../workload/prng.ts';
import { openImage } from '../image/open-image.ts';
import { parseImageSpec, type ImageFormat } from '../image/image-spec.ts';
import { log } from '../util/log.ts';

/** zstd level the models measure sizes at (the sender's usual level on slow links). */
const MODEL_LEVEL = 3;

function compressedSize(c: BlockCompressor, block: Buffer): number {
  const r = c.compress(block);
  return r.compressed ? r.payload.length : 0;
}

/** `onBlock` sees each non-zero block's full BLAKE3 id (e.g. to ask a replica index about it). */
export async function scanImage(path: string, blockSize: number, onBlock?: (b: number, id: Buffer) => void, format: ImageFormat = 'raw'): Promise<SimDisk> {
  // Any image kind (raw file, block device, qcow2 chain, NBD URI), read-only.
  const opened = await openImage({ spec: parseImageSpec(path, format), writable: false, log });
  const image = opened.disk;
  try {
    const size = image.size;
    const disk = new SimDisk(size, blockSize);
    const c = new BlockCompressor(MODEL_LEVEL);
    const chunk = Buffer.allocUnsafe(Math.max(blockSize, 4 << 20) - (Math.max(blockSize, 4 << 20) % blockSize));
    for (let off = 0; off < size; off += chunk.length) {
      const bytesRead = Math.min(chunk.length, size - off);
      await image.read(off, chunk.subarray(0, bytesRead));
      for (let p = 0; p < bytesRead; p += blockSize) {
        const b = (off + p) / blockSize;
        const block = chunk.subarray(p, Math.min(bytesRead, p + blockSize));
        if (isZero(block)) continue;
        const h = contentId(block);
        onBlock?.(b, h);
        disk.ids[b] = (h.readUInt32LE(0) & 0xfffff) * 2 ** 32 + h.readUInt32LE(4) || 1;
        disk.zsizes[b] = compressedSize(c, Buffer.from(block));
      }
    }
    return disk;
  } finally {
    await opened.close();
  }
}

let textZ: { blockSize: number; z: number } | undefined;

/** zstd size of one image-gen text block of this size (measured once). */
function textBlockSize(blockSize: number): number {
  if (textZ?.blockSize === blockSize) return textZ.z;
  const rng = new Prng(7);
  const corpus = Buffer.allocUnsafe(blockSize * 4);
  fillText(corpus, rng);
  const block = Buffer.from(corpus.subarray(blockSize, 2 * blockSize));
  rng.fill(block.subarray(100, 164)); // image-gen's unique 64-byte stamp
  textZ = { blockSize, z: compressedSize(new BlockCompressor(MODEL_LEVEL), block) };
  return textZ.z;
}

export function syntheticImage(size: number, blockSize: number, seed = 1, mix: ImageMix = DEFAULT_MIX): SimDisk {
  const disk = new SimDisk(size, blockSize);
  const rng = new Prng(seed);
  const tz = textBlockSize(blockSize);
  // Half of image-gen's pool is text, half random.
  const poolZ = (i: number) => (i % 2 ? 0 : tz);
  let areaDraw = 0;
  for (let b = 0; b < disk.blocks; b++) {
    const off = b * blockSize;
    if (off % (1 << 20) === 0 || b === 0) areaDraw = rng.next();
    const r = rng.next() < 0.75 ? areaDraw : rng.next();
    if (r < mix.zero) continue;
    if (r < mix.zero + mix.duplicate) {
      const i = rng.int(16);
      disk.ids[b] = mixId(3, seed, i);
      disk.zsizes[b] = poolZ(i);
    } else if (r < mix.zero + mix.duplicate + mix.text) {
      disk.ids[b] = mixId(4, seed, b);
      disk.zsizes[b] = tz;
    } else {
      disk.ids[b] = mixId(5, seed, b);
    }
  }
  return disk;
}
