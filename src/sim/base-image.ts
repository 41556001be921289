/**
 * "The destination already holds the base image the VM was cloned from."
 *
 * A VM is usually created as a clone of an OS template (a base image) and then
 * diverges: packages are updated, logs and application data are written. The
 * template, or another VM cloned from it, is what datacenter B holds most
 * often (docs/design.md: "Datacenter B usually already holds much of the content:
 * base images, older replicas of the same VM, other VMs of the same OS").
 *
 * The model: the base and the VM's image agree on a share of the VM image's
 * non-zero blocks; every other block of the base holds content the VM image
 * does not have (the template's version of what the VM since rewrote). Which
 * blocks are shared is drawn per 1 MiB area (files are rewritten whole, so
 * divergence clusters) with a quarter of the blocks drawn alone, over every
 * content kind alike (text, random and repeated blocks): an OS template's
 * binaries (incompressible) are shared as much as its text files.
 *
 * BASE_SHARE = 0.5, and why it is conservative:
 * - Jin & Miller, "The Effectiveness of Deduplication on Virtual Machine Disk
 *   Images" (SYSTOR 2009) found that stored data "grows very slowly after the
 *   first few virtual disk images if only the locale or software
 *   configuration is changed": images of one OS release share most of their
 *   non-zero content. A clone of the template shares more than that at birth
 *   (all of it).
 * - Half of the non-zero data means the VM has since rewritten as much as
 *   the template gave it. It is a round, deliberately low number rather than
 *   the near-total sharing those measurements suggest for one OS release,
 *   chosen before measuring its effect and not tuned to the benchmark's goal.
 */
import { copyFile, open } from 'node:fs/promises';
import { mixId } from './content-model.ts';
import { SimDisk } from './sim-disk.ts';
import { isZero } from '../content/content-id.ts';

export const BASE_SHARE = 0.5;
/** Where the modelled base lies at the modelled target (a name in its replica index). */
export const BASE_IMAGE_PATH = '/flimcd-sim/base-template.img';
const AREA = 1 << 20;

/** Uniform [0, 1) from a 52-bit id. */
const unit = (id: number) => id / 2 ** 52;

/** Does the VM image still hold the base's content at block `b`? (deterministic for a seed) */
export function sharedWithBase(b: number, blockSize: number, share: number, seed: number): boolean {
  const area = Math.floor((b * blockSize) / AREA);
  const alone = unit(mixId(11, seed, b)) < 0.25;
  const r = alone ? unit(mixId(12, seed, b)) : unit(mixId(13, seed, area));
  return r < share;
}

/** The base image a modelled VM image was cloned from (`share` of its non-zero blocks unchanged since). */
export function baseOf(image: SimDisk, share = BASE_SHARE, seed = 1): SimDisk {
  const base = new SimDisk(image.size, image.unit);
  for (let b = 0; b < image.blocks; b++) {
    if (image.ids[b] === 0) continue;
    if (sharedWithBase(b, image.unit, share, seed)) {
      base.ids[b] = image.ids[b]!;
      base.zsizes[b] = image.zsizes[b]!;
    } else {
      // The template's own content here, of the same kind (same modelled zstd size).
      base.ids[b] = mixId(14, seed, b);
      base.zsizes[b] = image.zsizes[b]!;
    }
  }
  return base;
}

/**
 * The same for a real image file (the validation runs real agents on it):
 * writes `basePath` as a copy of `imagePath` whose unshared non-zero blocks
 * have different bytes (64 bytes at the block's start replaced, so the
 * block's compressibility stays). Returns the number of shared blocks.
 */
export async function writeBaseFile(imagePath: string, basePath: string, blockSize: number, share = BASE_SHARE, seed = 1): Promise<{ shared: number; changed: number }> {
  await copyFile(imagePath, basePath);
  const fh = await open(basePath, 'r+');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.allocUnsafe(blockSize);
    const stamp = Buffer.allocUnsafe(64);
    let shared = 0;
    let changed = 0;
    for (let b = 0; b * blockSize < size; b++) {
      const len = Math.min(blockSize, size - b * blockSize);
      const { bytesRead } = await fh.read(buf, 0, len, b * blockSize);
      if (isZero(buf.subarray(0, bytesRead))) continue;
      if (sharedWithBase(b, blockSize, share, seed)) {
        shared++;
        continue;
      }
      for (let i = 0; i < 64; i += 8) stamp.writeDoubleLE(mixId(15, seed, b, i), i);
      await fh.write(stamp, 0, Math.min(64, len), b * blockSize);
      changed++;
    }
    return { shared, changed };
  } finally {
    await fh.close();
  }
}
