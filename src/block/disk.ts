/**
 * The one block-device abstraction every layer of flimcd speaks. Backends
 * (file, memory, NBD client) implement it; filters wrap a Disk and are a Disk,
 * as nbdkit filters are, so tracking, presence and fault injection stack.
 *
 * Offsets and lengths are byte counts (JS numbers, safe up to 2^53). Callers
 * validate ranges before calling (the NBD server does it in one place);
 * backends still refuse out-of-range requests rather than corrupt data.
 */

/** Extent flags: the same bits as NBD's base:allocation context. */
export const ExtentFlags = {
  /** Not allocated: reads as zero on this backend, or undefined if ZERO is clear. */
  HOLE: 1,
  /** Reads as all zeroes. */
  ZERO: 2,
} as const;

export interface Extent {
  offset: number;
  length: number;
  /** Bit set of ExtentFlags; 0 means allocated data. */
  flags: number;
}

export interface WriteOptions {
  /** Force unit access: the data is durable before the promise resolves. */
  fua?: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** Keep the range allocated (NBD_CMD_FLAG_NO_HOLE). */
  noHole?: boolean;
  /** Fail with NotSupportedError unless zeroing is faster than writing zeroes (NBD_CMD_FLAG_FAST_ZERO). */
  fastZero?: boolean;
}

/** Preferred request sizes, as NBD_INFO_BLOCK_SIZE advertises them. */
export interface BlockSizeHint {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** What a disk can do; the NBD server derives its transmission flags from this. */
export interface DiskCapabilities {
  readOnly: boolean;
  canFlush: boolean;
  canFua: boolean;
  canTrim: boolean;
  canZero: boolean;
  canFastZero: boolean;
  canCache: boolean;
  canExtents: boolean;
  /** Several connections may use the disk at once with consistent flush semantics. */
  canMultiConn: boolean;
  rotational: boolean;
}

export interface Disk {
  readonly size: number;
  readonly capabilities: DiskCapabilities;
  readonly blockSize: BlockSizeHint;
  /** Fill `into` with the bytes at [offset, offset + into.length). Zero-copy for the caller's buffer. */
  read(offset: number, into: Uint8Array): Promise<void>;
  write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void>;
  /**
   * Optional vectored write: the bytes of `chunks`, in order, at `offset`, as
   * one request (same semantics as write() of their concatenation). Lets the
   * NBD server hand over the socket's chunks of a payload without joining
   * them. Callers go through writeChunks() (writev.ts), which joins for a
   * disk without it.
   */
  writev?(offset: number, chunks: readonly Uint8Array[], opts?: WriteOptions): Promise<void>;
  flush(): Promise<void>;
  /** Discard: afterwards the range may read as anything (NBD semantics); file and memory read zero. */
  trim(offset: number, length: number, opts?: WriteOptions): Promise<void>;
  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void>;
  /** Hint to pull a range into cache; a no-op is a valid implementation. */
  cache(offset: number, length: number): Promise<void>;
  /**
   * Allocation map covering at least [offset, offset+1) and at most
   * [offset, offset+length), in order and contiguous from `offset`.
   * A disk that cannot tell reports one data extent. `maxExtents` is a hint:
   * the caller uses no more than that many, so the disk may stop early.
   */
  extents(offset: number, length: number, maxExtents?: number): Promise<Extent[]>;
  close(): Promise<void>;
}

export const DEFAULT_BLOCK_SIZE_HINT: BlockSizeHint = { minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 };

export function fullCapabilities(over: Partial<DiskCapabilities> = {}): DiskCapabilities {
  return {
    readOnly: false, canFlush: true, canFua: true, canTrim: true, canZero: true, canFastZero: true,
    canCache: true, canExtents: true, canMultiConn: true, rotational: false, ...over,
  };
}
