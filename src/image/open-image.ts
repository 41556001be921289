/**
 * The one way flimcd opens `--image`: a raw file or block device (FileDisk), a
 * qcow2 file with its backing chain (through a supervised qemu-storage-daemon
 * and our NBD client: QEMU's block layer, no qcow2 parser of ours), or an
 * export on an NBD server (qemu-storage-daemon, qemu-nbd, nbdkit). Every form
 * is a Disk; whoever opens it closes it, which stops a daemon it started.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { Disk, Extent } from '../block/disk.ts';
import { FileDisk } from '../block/file.ts';
import { NbdClient } from '../nbd/client.ts';
import { UsageError, systemErrorCode } from '../errors.ts';
import { formatAddress } from '../util/address.ts';
import { describeImage, type ImageFormat, type ImageSpec } from './image-spec.ts';
import { STORAGE_DAEMON_EXPORT, StorageDaemon } from './storage-daemon.ts';
import { StorageDaemonDisk } from './storage-daemon-disk.ts';

const run = promisify(execFile);

/** The first four bytes of every qcow2 file ("QFI\xfb"). */
const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
/** The meta context whose value is each range's depth in the backing chain. */
export const ALLOCATION_DEPTH = 'qemu:allocation-depth';

export interface OpenImageOptions {
  spec: ImageSpec;
  writable: boolean;
  /** Create the image at this size when it does not exist (the target's). */
  createSize?: number;
  /** The target's `--backing`: a missing image is created as a qcow2 overlay on this base. */
  backing?: { file: string; format: ImageFormat };
  /** Where a storage daemon's socket goes (the agent's state directory; default a temporary directory). */
  socketDir?: string;
  /** qemu-storage-daemon's binary (`--storage-daemon`). */
  storageDaemon?: string;
  log: Logger;
  /** The flag named in errors. */
  flag?: string;
  /** Also open the qemu:allocation-depth view of a qcow2 with a backing file (the source's from_backing). */
  allocationDepth?: boolean;
}

export interface OpenedImage {
  readonly disk: Disk;
  readonly spec: ImageSpec;
  /** For logs: the path or URI, and the format. */
  readonly label: string;
  /** The image was created by this open. */
  readonly created: boolean;
  /**
   * Each range's depth in the backing chain (Extent.flags: 0 unallocated, 1
   * the top layer, 2 and more a backing file), from the daemon's
   * qemu:allocation-depth context; undefined without a backing chain.
   */
  readonly allocationDepth?: (offset: number, length: number) => Promise<Extent[]>;
  /** The top image's backing file, as qemu-img reports it (qcow2 only). */
  readonly backingFile?: { file: string; format: ImageFormat };
  close(): Promise<void>;
}

export async function openImage(o: OpenImageOptions): Promise<OpenedImage> {
  const { spec } = o;
  const flag = o.flag ?? '--image';
  if (spec.kind === 'nbd') {
    const disk = await connectNbd(spec.address, spec.exportName, flag, spec.uri);
    if (o.writable && disk.capabilities.readOnly) {
      await disk.close();
      throw new UsageError(`${flag}: ${spec.uri} is a read-only export; this command writes to the image`);
    }
    return { disk, spec, label: spec.uri, created: false, close: () => disk.close() };
  }
  const path = spec.path;
  let created = false;
  if (!existsSync(path)) {
    if (o.createSize === undefined) throw new UsageError(`${flag}: ${path} does not exist`);
    if (o.backing) await createOverlay(path, o.backing, o.createSize, flag);
    else if (spec.format === 'qcow2') await qemuImg(['create', '-q', '-f', 'qcow2', path, String(o.createSize)], flag);
    created = spec.format === 'qcow2' || o.backing !== undefined;
  } else if (o.backing && spec.format !== 'qcow2') {
    throw new UsageError(`${flag}: ${path} exists; --backing creates a new qcow2 overlay there (give --format qcow2 to resume into an existing one, or remove it)`);
  }
  if (spec.format === 'raw' && !(o.backing && created)) {
    warnIfQcow2(path, o.log, flag);
    let disk: FileDisk;
    try {
      disk = await FileDisk.open(path, o.writable ? { create: o.createSize !== undefined, size: o.createSize } : { readOnly: true });
    } catch (e) {
      const code = systemErrorCode(e) ?? (e as { code?: string }).code;
      throw new UsageError(`${flag}: ${path} cannot be opened: ${(e as Error).message}${code && !(e as Error).message.includes(code) ? ` (${code})` : ''}`);
    }
    return { disk, spec, label: path, created, close: () => disk.close() };
  }
  // qcow2 (a new overlay included): QEMU's block layer in a supervised daemon.
  const format: ImageFormat = 'qcow2';
  const info = await imageInfo(path, format, flag);
  let socketDir = o.socketDir;
  try {
    if (socketDir) mkdirSync(socketDir, { recursive: true });
  } catch (e) {
    // A read-only export from a directory it cannot write: it still serves, from a temporary socket directory.
    o.log.warn({ dir: socketDir, err: (e as Error).message }, 'cannot create the state directory for qemu-storage-daemon\'s socket; using a temporary one (a daemon left by a killed flimcd is then not reaped)');
    socketDir = undefined;
  }
  const daemon = await StorageDaemon.start({ file: path, format, writable: o.writable, socketDir, binary: o.storageDaemon, log: o.log, flag });
  let client: NbdClient | undefined;
  let depth: NbdClient | undefined;
  try {
    client = await connectNbd({ kind: 'unix', path: daemon.socketPath }, STORAGE_DAEMON_EXPORT, flag, path);
    if (info.backing && o.allocationDepth) depth = await NbdClient.connect({ kind: 'unix', path: daemon.socketPath }, { exportName: STORAGE_DAEMON_EXPORT, metaContext: ALLOCATION_DEPTH });
  } catch (e) {
    await client?.close().catch(() => {});
    await daemon.stop();
    throw e;
  }
  const disk = new StorageDaemonDisk(client, daemon);
  const depthClient = depth?.capabilities.canExtents ? depth : undefined;
  return {
    disk, spec, label: describeImage(spec), created, backingFile: info.backing,
    allocationDepth: depthClient ? (offset, length) => depthClient.extents(offset, length) : undefined,
    close: async () => {
      await depth?.close().catch(() => {});
      await disk.close();
    },
  };
}

/** An image's size (a qcow2's virtual size, an NBD export's size), opening it read-only for the moment. */
export async function imageSizeOf(spec: ImageSpec, log: Logger, flag?: string): Promise<number> {
  const opened = await openImage({ spec, writable: false, log, flag });
  const size = opened.disk.size;
  await opened.close();
  return size;
}

/** A raw image that starts like a qcow2 file: say so, never switch (the guest may have written that header). */
function warnIfQcow2(path: string, log: Logger, flag: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    if (readSync(fd, head, 0, 4, 0) === 4 && head.equals(QCOW2_MAGIC)) {
      log.warn({ image: path }, `${flag} ${path} starts with the qcow2 magic but is opened as raw (the default); if it is a qcow2 image, give --format qcow2. Formats are never probed: a guest can write a qcow2 header into its raw disk`);
    }
  } catch {
    // Unreadable: the open below reports it.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function connectNbd(address: import('../util/address.ts').Address, exportName: string, flag: string, what: string): Promise<NbdClient> {
  try {
    return await NbdClient.connect(address, { exportName, connectTimeoutMs: 10_000 });
  } catch (e) {
    throw new UsageError(`${flag}: cannot open ${what} (NBD server ${formatAddress(address)}, export "${exportName}"): ${(e as Error).message}`);
  }
}

/** `qemu-img info` on the chain: checks the header and every backing file before the daemon starts, and names the top's backing file. */
async function imageInfo(path: string, format: ImageFormat, flag: string): Promise<{ virtualSize: number; backing?: { file: string; format: ImageFormat } }> {
  const out = await qemuImg(['info', '--output=json', '--backing-chain', '-U', '-f', format, path], flag, `${path} cannot be opened as ${format}`);
  const chain = JSON.parse(out) as Array<{ 'virtual-size': number; 'full-backing-filename'?: string; 'backing-filename-format'?: string }>;
  const top = chain[0];
  if (!top) throw new UsageError(`${flag}: qemu-img info reports nothing for ${path}`);
  const bf = top['full-backing-filename'];
  const bfmt = top['backing-filename-format'];
  return { virtualSize: top['virtual-size'], backing: bf ? { file: bf, format: bfmt === 'qcow2' ? 'qcow2' : 'raw' } : undefined };
}

/** The target's new overlay: a qcow2 whose backing file is this host's copy of the base, with the base's format named (never probed). */
async function createOverlay(path: string, backing: { file: string; format: ImageFormat }, size: number, flag: string): Promise<void> {
  const base = resolve(backing.file);
  if (!existsSync(base)) throw new UsageError(`--backing: ${backing.file} does not exist`);
  if (!statSync(base).isFile() && !statSync(base).isBlockDevice()) throw new UsageError(`--backing: ${backing.file} is not a file or block device`);
  await qemuImg(['create', '-q', '-f', 'qcow2', '-b', base, '-F', backing.format, path, String(size)], flag, `cannot create the overlay ${path} on ${backing.file}`);
}

/** Runs qemu-img; its complaint becomes the one-line UsageError. */
async function qemuImg(args: string[], flag: string, what = 'qemu-img failed'): Promise<string> {
  try {
    const { stdout } = await run('qemu-img', args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT') throw new UsageError(`${flag}: qemu-img was not found on PATH (install qemu-utils); it checks and creates qcow2 images`);
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim().split('\n').filter((l) => l).map((l) => l.replace(/^qemu-img: /, ''));
    throw new UsageError(`${flag}: ${what}: ${stderr.join('; ') || (e as Error).message}`);
  }
}
