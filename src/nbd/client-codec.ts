/**
 * Wire encoding and decoding for the NBD client (src/nbd/client.ts), kept
 * free of sockets so it can be unit-tested byte by byte.
 *
 * Cookies: the client only uses cookies whose high 32 bits are zero, so a
 * cookie is a plain number here; a reply with other high bits is unknown.
 */
import type { Extent } from '../block/disk.ts';
import {
  ErrorCode, FlimcdError, InvalidArgumentError, IoError, NoSpaceError, NotSupportedError, OverflowError, ProtocolError,
  ReadOnlyError, ShutdownError,
} from '../errors.ts';
import { NbdErrno, nbdErrnoName } from './errno.ts';
import {
  Cmd, IHAVEOPT, Info, MAX_PAYLOAD, OPTION_REPLY_MAGIC, REQUEST_MAGIC, ReplyType, Rep,
  SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE, STRUCTURED_REPLY_HEADER_SIZE, STRUCTURED_REPLY_MAGIC, StateFlags,
  cmdName,
} from './protocol.ts';

const TWO32 = 0x1_0000_0000;

/** Reads a u64 as a JS number; ProtocolError if it is not a safe integer. */
export function readU64(buf: Uint8Array, at: number, what: string): number {
  const b = buf as Buffer;
  const hi = b.readUInt32BE(at);
  const lo = b.readUInt32BE(at + 4);
  if (hi >= 0x20_0000) throw new ProtocolError(`${what} ${(BigInt(hi) << 32n) | BigInt(lo)} does not fit in 2^53`);
  return hi * TWO32 + lo;
}

function writeU64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32BE(Math.floor(v / TWO32), at);
  buf.writeUInt32BE(v >>> 0, at + 4);
}

// ---------------------------------------------------------------- handshake

/** An option request: IHAVEOPT, option, length, data. */
export function encodeOption(opt: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.allocUnsafe(16 + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(opt, 8);
  b.writeUInt32BE(data.length, 12);
  b.set(data, 16);
  return b;
}

/** Option data for NBD_OPT_GO / NBD_OPT_INFO: name, then the info types requested. */
export function encodeGoData(exportName: string, infos: number[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const b = Buffer.allocUnsafe(4 + name.length + 2 + 2 * infos.length);
  b.writeUInt32BE(name.length, 0);
  name.copy(b, 4);
  let at = 4 + name.length;
  b.writeUInt16BE(infos.length, at);
  at += 2;
  for (const i of infos) {
    b.writeUInt16BE(i, at);
    at += 2;
  }
  return b;
}

/** Option data for NBD_OPT_SET_META_CONTEXT / LIST_META_CONTEXT. */
export function encodeMetaContextData(exportName: string, queries: string[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const b = Buffer.allocUnsafe(8 + name.length + qs.reduce((n, q) => n + 4 + q.length, 0));
  b.writeUInt32BE(name.length, 0);
  name.copy(b, 4);
  let at = 4 + name.length;
  b.writeUInt32BE(qs.length, at);
  at += 4;
  for (const q of qs) {
    b.writeUInt32BE(q.length, at);
    q.copy(b, at + 4);
    at += 4 + q.length;
  }
  return b;
}

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

/** Parses the 20-byte option reply header; checks the magic and that it answers `expectOption`. */
export function parseOptionReplyHeader(buf: Uint8Array, expectOption: number): OptionReplyHeader {
  const b = buf as Buffer;
  if (b.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) {
    throw new ProtocolError(`bad option reply magic 0x${b.readBigUInt64BE(0).toString(16)}`);
  }
  const option = b.readUInt32BE(8);
  if (option !== expectOption) throw new ProtocolError(`option reply for option ${option}, expected ${expectOption}`);
  return { option, type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

export type InfoReply =
  | { kind: 'export'; size: number; flags: number }
  | { kind: 'name'; name: string }
  | { kind: 'description'; description: string }
  | { kind: 'blockSize'; minimum: number; preferred: number; maximum: number }
  | { kind: 'unknown'; type: number };

/** Parses an NBD_REP_INFO payload. */
export function parseInfoReply(p: Uint8Array): InfoReply {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 2) throw new ProtocolError('NBD_REP_INFO shorter than 2 bytes');
  const type = b.readUInt16BE(0);
  switch (type) {
    case Info.EXPORT:
      if (b.length !== 12) throw new ProtocolError(`NBD_INFO_EXPORT has length ${b.length}, expected 12`);
      return { kind: 'export', size: readU64(b, 2, 'export size'), flags: b.readUInt16BE(10) };
    case Info.NAME:
      return { kind: 'name', name: b.toString('utf8', 2) };
    case Info.DESCRIPTION:
      return { kind: 'description', description: b.toString('utf8', 2) };
    case Info.BLOCK_SIZE: {
      if (b.length !== 14) throw new ProtocolError(`NBD_INFO_BLOCK_SIZE has length ${b.length}, expected 14`);
      const minimum = b.readUInt32BE(2);
      const preferred = b.readUInt32BE(6);
      const maximum = b.readUInt32BE(10);
      const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
      if (!pow2(minimum) || minimum > 65536) throw new ProtocolError(`server minimum block size ${minimum} is not a power of 2 up to 64 KiB`);
      if (!pow2(preferred) || preferred < minimum) throw new ProtocolError(`server preferred block size ${preferred} is invalid (minimum ${minimum})`);
      if (maximum < minimum || (maximum !== 0xffffffff && maximum % minimum !== 0)) {
        throw new ProtocolError(`server maximum block size ${maximum} is not a multiple of the minimum ${minimum}`);
      }
      return { kind: 'blockSize', minimum, preferred, maximum };
    }
    default:
      return { kind: 'unknown', type };
  }
}

/** Parses an NBD_REP_SERVER payload (reply to NBD_OPT_LIST). */
export function parseServerReply(p: Uint8Array): { name: string; description: string } {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 4) throw new ProtocolError('NBD_REP_SERVER shorter than 4 bytes');
  const n = b.readUInt32BE(0);
  if (n > b.length - 4) throw new ProtocolError(`NBD_REP_SERVER name length ${n} exceeds the reply`);
  return { name: b.toString('utf8', 4, 4 + n), description: b.toString('utf8', 4 + n) };
}

/** Parses an NBD_REP_META_CONTEXT payload. */
export function parseMetaContextReply(p: Uint8Array): { id: number; name: string } {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 4) throw new ProtocolError('NBD_REP_META_CONTEXT shorter than 4 bytes');
  return { id: b.readUInt32BE(0), name: b.toString('utf8', 4) };
}

const repErrorNames: Record<number, string> = {
  [Rep.ERR_UNSUP]: 'unsupported option',
  [Rep.ERR_POLICY]: 'forbidden by server policy',
  [Rep.ERR_INVALID]: 'invalid option',
  [Rep.ERR_PLATFORM]: 'not supported on the server platform',
  [Rep.ERR_TLS_REQD]: 'server requires TLS',
  [Rep.ERR_UNKNOWN]: 'export not available',
  [Rep.ERR_SHUTDOWN]: 'server is shutting down',
  [Rep.ERR_BLOCK_SIZE_REQD]: 'server requires block size negotiation',
  [Rep.ERR_TOO_BIG]: 'request or reply too big',
};

/** A FlimcdError for an option error reply; `what` names the operation (e.g. `export "disk0"`). */
export function optionError(type: number, what: string, serverMessage: string): FlimcdError {
  const reason = repErrorNames[type] ?? `error reply 0x${type.toString(16)}`;
  const msg = `${what}: ${reason}${serverMessage ? ` (server says: ${serverMessage})` : ''}`;
  switch (type) {
    case Rep.ERR_UNKNOWN: return new InvalidArgumentError(msg);
    case Rep.ERR_POLICY: return new FlimcdError(msg, ErrorCode.PERMISSION);
    case Rep.ERR_TLS_REQD: return new NotSupportedError(`${msg}; flimcd does not speak TLS`);
    case Rep.ERR_UNSUP: case Rep.ERR_PLATFORM: return new NotSupportedError(msg);
    case Rep.ERR_SHUTDOWN: return new ShutdownError(msg);
    case Rep.ERR_INVALID: return new InvalidArgumentError(msg);
    default: return new IoError(msg);
  }
}

// ------------------------------------------------------------- transmission

/** Writes a 28-byte request header at `at`. */
export function encodeRequest(buf: Buffer, at: number, flags: number, type: number, cookie: number, offset: number, length: number): void {
  buf.writeUInt32BE(REQUEST_MAGIC, at);
  buf.writeUInt16BE(flags, at + 4);
  buf.writeUInt16BE(type, at + 6);
  buf.writeUInt32BE(0, at + 8);
  buf.writeUInt32BE(cookie, at + 12);
  writeU64(buf, at + 16, offset);
  buf.writeUInt32BE(length, at + 24);
}

/**
 * The error a request fails with when the server reports `errno`. EPERM on a
 * modifying command means the export refuses writes (ReadOnlyError). Unknown
 * values are treated as EINVAL, as the spec asks, but the message keeps them.
 */
export function errorFromErrno(errno: number, serverMessage: string, cmd: number, offset: number, length: number): FlimcdError {
  const what = `${cmdName(cmd)} ${offset}+${length}`;
  const msg = `NBD server failed ${what}: ${nbdErrnoName(errno)}${serverMessage ? `: ${serverMessage}` : ''}`;
  switch (errno) {
    case NbdErrno.EPERM:
      return cmd === Cmd.WRITE || cmd === Cmd.TRIM || cmd === Cmd.WRITE_ZEROES
        ? new ReadOnlyError(msg)
        : new FlimcdError(msg, ErrorCode.PERMISSION);
    case NbdErrno.EIO: return new IoError(msg);
    case NbdErrno.ENOMEM: return new FlimcdError(msg, ErrorCode.NO_MEMORY);
    case NbdErrno.EINVAL: return new InvalidArgumentError(msg);
    case NbdErrno.ENOSPC: return new NoSpaceError(msg);
    case NbdErrno.EOVERFLOW: return new OverflowError(msg);
    case NbdErrno.ENOTSUP: return new NotSupportedError(msg);
    case NbdErrno.ESHUTDOWN: return new ShutdownError(msg);
    default: return new InvalidArgumentError(msg);
  }
}

export interface ErrorChunk {
  errno: number;
  message: string;
  /** Present for NBD_REPLY_TYPE_ERROR_OFFSET. */
  offset?: number;
}

/** Parses any error chunk (type bit 15 set). */
export function parseErrorChunk(type: number, p: Uint8Array): ErrorChunk {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 6) throw new ProtocolError(`error chunk (type ${type}) shorter than 6 bytes`);
  const errno = b.readUInt32BE(0);
  const mlen = b.readUInt16BE(4);
  if (mlen > b.length - 6) throw new ProtocolError(`error chunk message length ${mlen} exceeds the chunk (${b.length} bytes)`);
  const message = b.toString('utf8', 6, 6 + mlen);
  if (type === ReplyType.ERROR_OFFSET) {
    if (b.length !== 6 + mlen + 8) throw new ProtocolError(`NBD_REPLY_TYPE_ERROR_OFFSET has length ${b.length}, expected ${14 + mlen}`);
    return { errno, message, offset: readU64(b, 6 + mlen, 'error offset') };
  }
  return { errno, message };
}

/**
 * Parses an NBD_REPLY_TYPE_BLOCK_STATUS payload for a request at
 * [reqOffset, reqOffset+reqLength) and returns extents clipped to that range
 * (servers may let the last descriptor run past it). HOLE and ZERO map
 * directly; other flag bits are dropped.
 */
/** `mask`: the status bits kept (base:allocation's by default; a context such as qemu:allocation-depth keeps its whole value). */
export function parseBlockStatus(p: Uint8Array, reqOffset: number, reqLength: number, mask: number = StateFlags.HOLE | StateFlags.ZERO): { contextId: number; extents: Extent[] } {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 12 || (b.length - 4) % 8 !== 0) throw new ProtocolError(`block status chunk has bad length ${b.length}`);
  const contextId = b.readUInt32BE(0);
  const end = reqOffset + reqLength;
  const extents: Extent[] = [];
  let pos = reqOffset;
  for (let at = 4; at < b.length && pos < end; at += 8) {
    const len = b.readUInt32BE(at);
    if (len === 0) throw new ProtocolError('block status descriptor with zero length');
    const flags = (b.readUInt32BE(at + 4) & mask) >>> 0;
    const n = Math.min(len, end - pos);
    const last = extents[extents.length - 1];
    if (last && last.flags === flags) last.length += n;
    else extents.push({ offset: pos, length: n, flags });
    pos += n;
  }
  return { contextId, extents };
}

/**
 * Tracks which bytes of a read request the content chunks have covered, to
 * catch overlapping chunks and success replies that leave gaps. In-order
 * chunks (the usual case) cost no allocation.
 */
export class Coverage {
  covered = 0;
  private start = -1;
  private end = -1;
  /** Further disjoint [start, end) pairs, sorted, once chunks arrive out of order. */
  private extra: number[] | undefined;

  /** Records [s, e); returns false if it overlaps something already recorded. */
  add(s: number, e: number): boolean {
    if (this.start < 0) {
      this.start = s;
      this.end = e;
    } else if (!this.extra) {
      if (s === this.end) this.end = e;
      else if (e === this.start) this.start = s;
      else if (s > this.end) this.extra = [this.start, this.end, s, e];
      else if (e < this.start) this.extra = [s, e, this.start, this.end];
      else return false;
    } else {
      const x = this.extra;
      let i = 0;
      while (i < x.length && x[i + 1]! <= s) i += 2;
      if (i < x.length && x[i]! < e) return false;
      x.splice(i, 0, s, e);
    }
    this.covered += e - s;
    return true;
  }

  reset(): void {
    this.covered = 0;
    this.start = -1;
    this.end = -1;
    this.extra = undefined;
  }
}

/** What the reply decoder calls; any exception it throws is fatal for the connection. */
export interface ReplyHandler {
  /** A simple reply. Return the buffer that the request's read data goes into, if data follows. */
  simple(cookie: number, error: number): Uint8Array | undefined;
  /** All read data of a simple reply has been copied. */
  simpleDataDone(cookie: number): void;
  /** An OFFSET_DATA chunk header: return where its `length` data bytes go (exactly `length` long). */
  data(cookie: number, flags: number, offset: number, length: number): Uint8Array;
  /** The data of an OFFSET_DATA chunk has been copied. */
  dataDone(cookie: number, flags: number): void;
  /** Any other structured chunk, with its whole payload (a view valid only during the call). */
  chunk(cookie: number, flags: number, type: number, payload: Buffer): void;
}

const S_HEADER = 0;
const S_DATA = 1;
const S_PAYLOAD = 2;
const DATA_HEADER_SIZE = STRUCTURED_REPLY_HEADER_SIZE + 8;
const EMPTY = Buffer.alloc(0);

/**
 * Push decoder for the server's transmission-phase byte stream. Feed it
 * socket chunks in order; it copies read data straight from those chunks into
 * the buffers the handler returns, so reads are never staged.
 */
export class ReplyDecoder {
  private state = S_HEADER;
  private readonly hdr = Buffer.allocUnsafe(DATA_HEADER_SIZE);
  private fill = 0;
  // S_DATA
  private dest: Uint8Array = EMPTY;
  private destPos = 0;
  private simpleData = false;
  // shared by S_DATA and S_PAYLOAD
  private cookie = 0;
  private flags = 0;
  private type = 0;
  // S_PAYLOAD
  private payload: Buffer = EMPTY;
  private payloadFill = 0;
  private payloadLength = 0;

  constructor(
    private readonly handler: ReplyHandler,
    /** Largest non-data structured payload accepted (block status lists, error messages). */
    private readonly maxPayload = MAX_PAYLOAD,
  ) {}

  /** True when the decoder is between messages. */
  get idle(): boolean {
    return this.state === S_HEADER && this.fill === 0;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.state === S_HEADER) {
        if (this.fill === 0) {
          const need = headerLength(chunk, pos, end - pos);
          if (need <= end - pos) {
            this.onHeader(chunk, pos);
            pos += need;
            continue;
          }
        }
        // Slow path: the header straddles socket chunks.
        let need = headerLength(this.hdr, 0, this.fill);
        while (this.fill < need && pos < end) {
          const n = Math.min(need - this.fill, end - pos);
          chunk.copy(this.hdr, this.fill, pos, pos + n);
          this.fill += n;
          pos += n;
          if (this.fill === need) need = headerLength(this.hdr, 0, this.fill);
        }
        if (this.fill < need) return;
        this.fill = 0;
        this.onHeader(this.hdr, 0);
      } else if (this.state === S_DATA) {
        const n = Math.min(this.dest.length - this.destPos, end - pos);
        chunk.copy(this.dest, this.destPos, pos, pos + n);
        this.destPos += n;
        pos += n;
        if (this.destPos === this.dest.length) this.finishData();
      } else {
        const len = this.payloadLength;
        if (this.payloadFill === 0 && end - pos >= len) {
          // The whole payload is in this chunk: hand over a view.
          const view = chunk.subarray(pos, pos + len);
          pos += len;
          this.state = S_HEADER;
          this.handler.chunk(this.cookie, this.flags, this.type, view);
          continue;
        }
        if (this.payloadFill === 0) this.payload = Buffer.allocUnsafe(len);
        const n = Math.min(len - this.payloadFill, end - pos);
        chunk.copy(this.payload, this.payloadFill, pos, pos + n);
        this.payloadFill += n;
        pos += n;
        if (this.payloadFill === len) {
          const p = this.payload;
          this.payload = EMPTY;
          this.payloadFill = 0;
          this.state = S_HEADER;
          this.handler.chunk(this.cookie, this.flags, this.type, p);
        }
      }
    }
  }

  private onHeader(src: Buffer, at: number): void {
    if (src.readUInt32BE(at) === SIMPLE_REPLY_MAGIC) {
      if (src.readUInt32BE(at + 8) !== 0) {
        throw new ProtocolError(`simple reply for unknown handle 0x${src.readBigUInt64BE(at + 8).toString(16)}`);
      }
      const error = src.readUInt32BE(at + 4);
      const cookie = src.readUInt32BE(at + 12);
      const dest = this.handler.simple(cookie, error);
      if (dest && dest.length > 0) {
        this.cookie = cookie;
        this.dest = dest;
        this.destPos = 0;
        this.simpleData = true;
        this.state = S_DATA;
      } else if (dest) {
        this.handler.simpleDataDone(cookie);
      }
      return;
    }
    // Structured (headerLength already rejected other magics).
    const flags = src.readUInt16BE(at + 4);
    const type = src.readUInt16BE(at + 6);
    if (src.readUInt32BE(at + 8) !== 0) {
      throw new ProtocolError(`structured reply for unknown handle 0x${src.readBigUInt64BE(at + 8).toString(16)}`);
    }
    const cookie = src.readUInt32BE(at + 12);
    const length = src.readUInt32BE(at + 16);
    if (type === ReplyType.OFFSET_DATA) {
      const offset = readU64(src, at + 20, 'data chunk offset');
      const dlen = length - 8;
      const dest = this.handler.data(cookie, flags, offset, dlen);
      if (dest.length !== dlen) throw new Error('ReplyHandler.data returned a buffer of the wrong length');
      this.cookie = cookie;
      this.flags = flags;
      this.dest = dest;
      this.destPos = 0;
      this.simpleData = false;
      this.state = S_DATA;
      return;
    }
    if (length === 0) {
      this.handler.chunk(cookie, flags, type, EMPTY);
      return;
    }
    if (length > this.maxPayload) {
      throw new ProtocolError(`structured reply chunk type ${type} with ${length}-byte payload exceeds the ${this.maxPayload}-byte limit`);
    }
    this.cookie = cookie;
    this.flags = flags;
    this.type = type;
    this.payloadLength = length;
    this.payloadFill = 0;
    this.state = S_PAYLOAD;
  }

  private finishData(): void {
    this.state = S_HEADER;
    this.dest = EMPTY;
    if (this.simpleData) this.handler.simpleDataDone(this.cookie);
    else this.handler.dataDone(this.cookie, this.flags);
  }
}

/**
 * Bytes of header needed given `avail` bytes known at `at`: 4 until the magic
 * is known, then 16 (simple) or 20 (structured), or 28 for OFFSET_DATA chunks,
 * whose 8-byte offset we parse with the header.
 */
function headerLength(src: Buffer, at: number, avail: number): number {
  if (avail < 4) return 4;
  const magic = src.readUInt32BE(at);
  if (magic === SIMPLE_REPLY_MAGIC) return SIMPLE_REPLY_SIZE;
  if (magic !== STRUCTURED_REPLY_MAGIC) throw new ProtocolError(`bad reply magic 0x${magic.toString(16).padStart(8, '0')}`);
  if (avail < STRUCTURED_REPLY_HEADER_SIZE) return STRUCTURED_REPLY_HEADER_SIZE;
  if (src.readUInt16BE(at + 6) !== ReplyType.OFFSET_DATA) return STRUCTURED_REPLY_HEADER_SIZE;
  const length = src.readUInt32BE(at + 16);
  if (length < 9) throw new ProtocolError(`NBD_REPLY_TYPE_OFFSET_DATA chunk with length ${length} (< 9)`);
  return DATA_HEADER_SIZE;
}

