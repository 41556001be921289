import { accessSync, constants, existsSync, statSync, type Stats } from 'node:fs';
import { UsageError, systemErrorCode } from '../errors.ts';

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

/** The same check for an image the command creates when it is missing (the target's): its size, or undefined if there is none yet. */
export function checkImageArgIfExists(path: string, o: ImageArgOptions = {}): number | undefined {
  if (!existsSync(path)) return undefined;
  return checkImageArg(path, o);
}

/** The image's size by its kind; only regular files are images for now (a block device would get its own case). */
function sizeOf(path: string, st: Stats, flag: string): number {
  if (st.isFile()) return st.size;
  if (st.isDirectory()) throw new UsageError(`${flag}: ${path} is a directory, not a disk image`);
  throw new UsageError(`${flag}: ${path} is not a regular file (${kindOf(st)}); give a raw image file`);
}

function kindOf(st: Stats): string {
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
