import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync, type Stats } from 'node:fs';
import { blockDeviceSize } from '../block/file.ts';
import { UsageError, systemErrorCode } from '../errors.ts';
import { parseImageFormat, parseImageSpec } from '../image/image-spec.ts';

/** Disk images are whole 512-byte sectors: NBD clients, QEMU and the agents' geometry check assume it. */
export const SECTOR_BYTES = 512;

export interface ImageArgOptions {
  /** The flag or argument named in errors (`--image`, `--target-image`, `image`). */
  flag?: string;
  /** The command writes to the image (source, target, a read-write export). */
  writable?: boolean;
}

/**
 * The one check of an image named on the command line, before anything is
 * opened or dialled: it exists, is a regular file, can be read (and written),
 * is not empty and holds whole 512-byte sectors. Anything else is a
 * UsageError (exit 2) naming the path and what is wrong with it.
 */
export function checkImageArg(path: string, o: ImageArgOptions = {}): number {
  const flag = o.flag ?? '--image';
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = systemErrorCode(e);
    throw new UsageError(`${flag}: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (e as Error).message})`}`);
  }
  const size = sizeOf(path, st, flag);
  try {
    accessSync(path, o.writable ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch (e) {
    throw new UsageError(`${flag}: ${path} cannot be ${o.writable ? 'read and written' : 'read'} (${systemErrorCode(e) ?? (e as Error).message})`);
  }
  if (size === 0) throw new UsageError(`${flag}: ${path} is empty; a disk image needs at least one ${SECTOR_BYTES}-byte sector`);
  if (size % SECTOR_BYTES !== 0) throw new UsageError(`${flag}: ${path} has ${size} bytes, not a whole number of ${SECTOR_BYTES}-byte sectors`);
  return size;
}

/**
 * `--image` with `--format`: an NBD URI is checked when it is opened (its size
 * is the server's: undefined here); a qcow2 file is checked by `qemu-img info`
 * on its whole chain (a missing backing file or a corrupt header is bad input,
 * before anything starts) and its size is the virtual size; a raw file or
 * block device goes through checkImageArg.
 */
export function checkImageSpecArg(image: string, format: string | undefined, o: ImageArgOptions = {}): number | undefined {
  const flag = o.flag ?? '--image';
  const spec = parseImageSpec(image, parseImageFormat(format), flag, format !== undefined);
  if (spec.kind === 'nbd') return undefined;
  if (spec.format === 'raw') return checkImageArg(image, o);
  if (!existsSync(image)) throw new UsageError(`${flag}: ${image} does not exist`);
  try {
    accessSync(image, o.writable ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch (e) {
    throw new UsageError(`${flag}: ${image} cannot be ${o.writable ? 'read and written' : 'read'} (${systemErrorCode(e) ?? (e as Error).message})`);
  }
  let out: string;
  try {
    out = execFileSync('qemu-img', ['info', '--output=json', '--backing-chain', '-U', '-f', spec.format, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT') throw new UsageError(`${flag}: qemu-img was not found on PATH (install qemu-utils); it checks qcow2 images`);
    const why = String((e as { stderr?: string }).stderr ?? '').trim().split('\n').filter((l) => l).map((l) => l.replace(/^qemu-img: /, '')).join('; ');
    throw new UsageError(`${flag}: ${image} cannot be opened as ${spec.format}: ${why || (e as Error).message}`);
  }
  const chain = JSON.parse(out) as Array<{ 'virtual-size': number }>;
  return chain[0]?.['virtual-size'];
}

/** The same check for an image the command creates when it is missing (the target's): its size, or undefined if there is none yet. */
export function checkImageArgIfExists(path: string, o: ImageArgOptions = {}): number | undefined {
  if (!existsSync(path)) return undefined;
  return checkImageArg(path, o);
}

/** The image's size by its kind: a regular file's length, or a block device's size from sysfs. */
function sizeOf(path: string, st: Stats, flag: string): number {
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    try {
      return blockDeviceSize(st.rdev);
    } catch (e) {
      throw new UsageError(`${flag}: ${path} is a block device whose size cannot be read (${systemErrorCode(e) ?? (e as Error).message})`);
    }
  }
  if (st.isDirectory()) throw new UsageError(`${flag}: ${path} is a directory, not a disk image`);
  throw new UsageError(`${flag}: ${path} is not a regular file or block device (${kindOf(st)}); give an image file, a block device or an NBD URI`);
}

function kindOf(st: Stats): string {
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
