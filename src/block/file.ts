import { constants as osConstants } from 'node:os';
import { constants as fsConstants, read as fsRead, readFileSync, write as fsWrite, writev as fsWritev } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { checkRange } from './range.ts';
import { DEFAULT_BLOCK_SIZE_HINT, fullCapabilities, type BlockSizeHint, type Disk, type DiskCapabilities, type Extent, type WriteOptions, type ZeroOptions } from './disk.ts';
import { chunksLength } from './writev.ts';
import { sparse as nativeSparse, sparseLoadError, type SparseOps } from './sparse-native.ts';
import { InvalidArgumentError, IoError, NotSupportedError, ReadOnlyError, ShutdownError, toFlimcdError } from '../errors.ts';
import { log } from '../util/log.ts';

export interface FileDiskOptions {
  readOnly?: boolean;
  /** Create the file if it does not exist. */
  create?: boolean;
  /** Grow the file (sparsely) to this size; an existing larger file is refused, never shrunk. */
  size?: number;
  /** Override the native helper; null forces the pure-JS fallback (tests, benchmarks). */
  sparse?: SparseOps | null;
}

const EAGAIN = osConstants.errno.EAGAIN;
/** Bound on a single read/write syscall; Node refuses lengths above 2 GiB anyway. */
const MAX_IO = 1 << 30;
/** Zero-write fallback chunk; one shared buffer that is only ever written from. */
const ZERO_CHUNK = 1 << 20;
let zeroes: Uint8Array | undefined;
/**
 * Reads up to this size are first tried from the page cache on the event loop
 * (readCached): a memcpy of a few µs instead of a trip through the libuv pool
 * and back. Larger reads go to the pool, where copies run in parallel.
 */
const CACHED_READ_MAX = 64 * 1024;
/** Caps one extents() answer (the contract allows a shorter one). */
const MAX_EXTENTS = 1 << 16;

let warnedNoNative = false;

// Callback fs.read/fs.write on the raw fd: about twice the small-request rate of FileHandle.read/write.
function pread(fd: number, buf: Uint8Array, at: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsRead(fd, buf, at, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function pwrite(fd: number, buf: Uint8Array, at: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, at, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function pwritev(fd: number, bufs: readonly Uint8Array[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWritev(fd, bufs as Uint8Array[], pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Most buffers handed to one pwritev call (Linux's IOV_MAX). */
const MAX_IOV = 1024;

/**
 * A Disk on a raw image file. Positional I/O straight into/from the caller's
 * buffers (the FileHandle owns the fd's lifetime; reads and writes go to the
 * fd directly, see pread); holes via the native sparse helper when it is loaded, otherwise
 * zeroing writes real zeroes and the whole file reports as data.
 */
export class FileDisk implements Disk {
  readonly path: string;
  readonly size: number;
  readonly capabilities: DiskCapabilities;
  readonly blockSize: BlockSizeHint;
  private readonly fh: FileHandle;
  private readonly fd: number;
  private readonly sparse: SparseOps | undefined;
  // Learned at run time: the filesystem refused the call once, don't retry it.
  private noPunch = false;
  private noZeroRange = false;
  private noSeek = false;
  private noCachedRead = false;
  // Requests (counted whole, from validation to reply) use the raw fd; close waits for them
  // or the fd number could be closed, even reused, under a request still issuing syscalls.
  private inFlight = 0;
  private onDrain: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  private constructor(path: string, fh: FileHandle, size: number, readOnly: boolean, blksize: number, sparse: SparseOps | undefined) {
    this.path = path;
    this.fh = fh;
    this.fd = fh.fd;
    this.size = size;
    this.sparse = sparse;
    this.capabilities = fullCapabilities({
      readOnly,
      canTrim: !readOnly,
      canZero: !readOnly,
      canFastZero: !readOnly && sparse !== undefined,
    });
    this.blockSize = { ...DEFAULT_BLOCK_SIZE_HINT, preferred: Math.min(Math.max(DEFAULT_BLOCK_SIZE_HINT.preferred, blksize || 0), 1 << 20) };
  }

  static async open(path: string, opts: FileDiskOptions = {}): Promise<FileDisk> {
    const readOnly = opts.readOnly ?? false;
    if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) {
      throw new InvalidArgumentError(`bad disk size ${opts.size}`);
    }
    if (readOnly && (opts.create || opts.size !== undefined)) {
      throw new InvalidArgumentError('create/size need a writable disk');
    }
    let sparse: SparseOps | undefined;
    if (opts.sparse === null) sparse = undefined;
    else if (opts.sparse) sparse = opts.sparse;
    else {
      sparse = nativeSparse;
      if (!sparse && !warnedNoNative) {
        warnedNoNative = true;
        log.warn({ reason: sparseLoadError }, 'native sparse helper unavailable: zeroing writes real zeroes and holes are not reported');
      }
    }

    const flags = readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR | (opts.create ? fsConstants.O_CREAT : 0);
    let fh: FileHandle;
    try {
      fh = await openFile(path, flags, 0o644);
    } catch (err) {
      throw toFlimcdError(err);
    }
    try {
      const st = await fh.stat();
      if (st.isBlockDevice()) {
        // A block device (an LVM volume, a loop device): its own size, nothing to truncate, no holes to seek.
        const size = blockDeviceSize(st.rdev);
        if (opts.size !== undefined && opts.size !== size) throw new InvalidArgumentError(`${path} is a ${size}-byte block device, not ${opts.size} bytes`);
        return new FileDisk(path, fh, size, readOnly, st.blksize, undefined);
      }
      if (!st.isFile()) throw new InvalidArgumentError(`${path} is not a regular file or block device`);
      let size = st.size;
      if (opts.size !== undefined && opts.size !== size) {
        if (opts.size < size) throw new InvalidArgumentError(`refusing to shrink ${path} from ${size} to ${opts.size} bytes`);
        await fh.truncate(opts.size);
        size = opts.size;
      }
      return new FileDisk(path, fh, size, readOnly, st.blksize, sparse);
    } catch (err) {
      await fh.close().catch(() => {});
      throw toFlimcdError(err);
    }
  }

  /** True when holes are punched and mapped natively (not the pure-JS fallback). */
  get native(): boolean {
    return this.sparse !== undefined;
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    this.live();
    checkRange(this.size, offset, into.length, false);
    this.inFlight++;
    let done = 0;
    try {
      if (into.length <= CACHED_READ_MAX && into.length > 0) {
        done = this.readCached(offset, into);
        if (done === into.length) return;
      }
      while (done < into.length) {
        const n = await pread(this.fd, into, done, Math.min(into.length - done, MAX_IO), offset + done);
        if (n === 0) {
          // The file was truncated behind our back; past EOF a raw image reads as zero.
          into.fill(0, done);
          return;
        }
        done += n;
      }
    } catch (err) {
      throw toFlimcdError(err);
    } finally {
      this.done();
    }
  }

  /** What the page cache holds of the read's start, copied on this thread; 0 when nothing (the pool reads the rest). */
  private readCached(offset: number, into: Uint8Array): number {
    const s = this.sparse;
    if (!s?.readCached || this.noCachedRead) return 0;
    const n = s.readCached(this.fd, into, offset);
    if (n > 0) return n;
    // Anything but "not cached" (EAGAIN) means this file or kernel cannot do it: stop trying. 0 (EOF) is left to the pool's zero-fill.
    if (n < 0 && n !== -EAGAIN) this.noCachedRead = true;
    return 0;
  }

  async write(offset: number, data: Uint8Array, opts: WriteOptions = {}): Promise<void> {
    this.writable();
    checkRange(this.size, offset, data.length, true);
    this.inFlight++;
    try {
      await this.writeAll(offset, data);
      if (opts.fua) await this.sync();
    } finally {
      this.done();
    }
  }

  /** One pwritev per up to MAX_IOV chunks, straight from the caller's buffers. */
  async writev(offset: number, chunks: readonly Uint8Array[], opts: WriteOptions = {}): Promise<void> {
    this.writable();
    const length = chunksLength(chunks);
    checkRange(this.size, offset, length, true);
    this.inFlight++;
    try {
      await this.writevAll(offset, chunks);
      if (opts.fua) await this.sync();
    } finally {
      this.done();
    }
  }

  async flush(): Promise<void> {
    this.live();
    this.inFlight++;
    try {
      await this.sync();
    } finally {
      this.done();
    }
  }

  async trim(offset: number, length: number, opts: WriteOptions = {}): Promise<void> {
    this.writable();
    checkRange(this.size, offset, length, true);
    this.inFlight++;
    try {
      // Trimmed ranges must read back as zero here, so the fallback zeroes rather than ignoring the trim.
      if (length > 0) await this.zero(offset, length, false, false);
      if (opts.fua) await this.sync();
    } finally {
      this.done();
    }
  }

  async writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    this.writable();
    checkRange(this.size, offset, length, true);
    const fast = opts.fastZero ?? false;
    if (fast && !this.sparse) throw new NotSupportedError('fast zero needs the native sparse helper');
    this.inFlight++;
    try {
      if (length > 0) await this.zero(offset, length, opts.noHole ?? false, fast);
      if (opts.fua) await this.sync();
    } finally {
      this.done();
    }
  }

  async cache(offset: number, length: number): Promise<void> {
    this.live();
    checkRange(this.size, offset, length, false);
    const s = this.sparse;
    if (!s || length === 0) return;
    this.inFlight++;
    try {
      await s.willNeed(this.fd, offset, length);
    } catch (err) {
      const e = toFlimcdError(err);
      if (!(e instanceof NotSupportedError)) throw e;
    } finally {
      this.done();
    }
  }

  async extents(offset: number, length: number, maxExtents = MAX_EXTENTS): Promise<Extent[]> {
    this.live();
    checkRange(this.size, offset, length, false);
    if (length === 0) return [];
    const s = this.sparse;
    if (s && !this.noSeek) {
      this.inFlight++;
      try {
        const flat = await s.mapExtents(this.fd, offset, length, Math.max(1, Math.min(maxExtents, MAX_EXTENTS)));
        if (flat.length >= 3) {
          const out = new Array<Extent>(flat.length / 3);
          for (let i = 0, j = 0; i < flat.length; i += 3, j++) out[j] = { offset: flat[i]!, length: flat[i + 1]!, flags: flat[i + 2]! };
          return out;
        }
      } catch (err) {
        const e = toFlimcdError(err);
        // EINVAL from lseek means SEEK_DATA is unknown to this filesystem.
        if (!(e instanceof NotSupportedError || e instanceof InvalidArgumentError)) throw e;
        this.noSeek = true;
      } finally {
        this.done();
      }
    }
    return [{ offset, length, flags: 0 }];
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.onDrain = resolve));
      try {
        await this.fh.close();
      } catch (err) {
        throw toFlimcdError(err);
      }
    })();
    return this.closing;
  }

  /** Zeroes a non-empty range: punch (unless noHole), else ZERO_RANGE, else (unless fast) write zeroes. */
  private async zero(offset: number, length: number, noHole: boolean, fast: boolean): Promise<void> {
    const s = this.sparse;
    if (s) {
      if (!noHole && !this.noPunch) {
        try {
          return await s.punchHole(this.fd, offset, length);
        } catch (err) {
          const e = toFlimcdError(err);
          if (!(e instanceof NotSupportedError)) throw e;
          this.noPunch = true;
        }
      }
      if (!this.noZeroRange) {
        try {
          return await s.zeroRange(this.fd, offset, length);
        } catch (err) {
          const e = toFlimcdError(err);
          if (!(e instanceof NotSupportedError)) throw e;
          this.noZeroRange = true;
        }
      }
    }
    if (fast) throw new NotSupportedError('this filesystem cannot zero without writing');
    zeroes ??= new Uint8Array(ZERO_CHUNK);
    for (let pos = offset, end = offset + length; pos < end; pos += ZERO_CHUNK) {
      await this.writeAll(pos, zeroes.subarray(0, Math.min(ZERO_CHUNK, end - pos)));
    }
  }

  private async writeAll(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < data.length) {
        const n = await pwrite(this.fd, data, done, Math.min(data.length - done, MAX_IO), offset + done);
        if (n <= 0) throw new IoError(`write at ${offset + done} made no progress`);
        done += n;
      }
    } catch (err) {
      throw toFlimcdError(err);
    }
  }

  private async writevAll(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    let pos = offset;
    let i = 0;
    try {
      while (i < chunks.length) {
        const batch = i === 0 && chunks.length <= MAX_IOV ? chunks : chunks.slice(i, i + MAX_IOV);
        const want = chunksLength(batch);
        const n = await pwritev(this.fd, batch, pos);
        if (n <= 0 && want > 0) throw new IoError(`write at ${pos} made no progress`);
        if (n < want) {
          // A short write (rare on a regular file): finish this batch chunk by chunk.
          let at = pos;
          let skip = n; // bytes of the batch already written
          for (const c of batch) {
            if (skip < c.length) await this.writeAll(at + skip, c.subarray(skip));
            skip = Math.max(0, skip - c.length);
            at += c.length;
          }
        }
        pos += want;
        i += batch.length;
      }
    } catch (err) {
      throw toFlimcdError(err);
    }
  }

  private async sync(): Promise<void> {
    try {
      await this.fh.datasync();
    } catch (err) {
      throw toFlimcdError(err);
    }
  }

  /** Ends one request; the last one out lets a pending close proceed. */
  private done(): void {
    if (--this.inFlight === 0 && this.onDrain) this.onDrain();
  }

  private live(): void {
    if (this.closing) throw new ShutdownError(`file disk ${this.path} is closed`);
  }

  private writable(): void {
    this.live();
    if (this.capabilities.readOnly) throw new ReadOnlyError();
  }
}

/** A block device's size from sysfs (in 512-byte sectors whatever the device's sector size). */
export function blockDeviceSize(rdev: number): number {
  // Linux's dev_t (low 32 bits): major in bits 8-19, minor in bits 0-7 and 20-31.
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  return Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512;
}
