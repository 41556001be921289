import { Cmd, CmdFlags, MAX_PAYLOAD, REQUEST_MAGIC, REQUEST_SIZE } from './protocol.ts';
import { NbdErrno } from './errno.ts';

/** A decoded transmission-phase request. The cookie stays as its 8 raw bytes: it is only echoed. */
export interface NbdRequest {
  flags: number;
  type: number;
  cookie: Buffer;
  /** May exceed 2^53 only when offsetOverflow is set. */
  offset: number;
  offsetOverflow: boolean;
  length: number;
}

/** Decodes a 28-byte request header; returns undefined on bad magic (a protocol violation). */
export function decodeRequest(b: Buffer): NbdRequest | undefined {
  if (b.length !== REQUEST_SIZE || b.readUInt32BE(0) !== REQUEST_MAGIC) return undefined;
  const hi = b.readUInt32BE(16);
  const lo = b.readUInt32BE(20);
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: Buffer.from(b.subarray(8, 16)),
    offset: hi * 2 ** 32 + lo,
    offsetOverflow: hi >= 2 ** 21,
    length: b.readUInt32BE(24),
  };
}

/** Does a request of this type carry a payload the server must consume? */
export function hasPayload(req: NbdRequest): boolean {
  return req.type === Cmd.WRITE;
}

/** What the connection negotiated, as validation needs it. */
export interface ValidationContext {
  size: number;
  readOnly: boolean;
  structuredReplies: boolean;
  metaContext: boolean;
  canFua: boolean;
  canFastZero: boolean;
  maxPayload?: number;
}

export interface Rejection {
  errno: number;
  message: string;
}

const ALLOWED_FLAGS: Record<number, number> = {
  [Cmd.READ]: CmdFlags.FUA | CmdFlags.DF,
  [Cmd.WRITE]: CmdFlags.FUA,
  [Cmd.DISC]: CmdFlags.FUA,
  [Cmd.FLUSH]: CmdFlags.FUA,
  [Cmd.TRIM]: CmdFlags.FUA,
  [Cmd.CACHE]: CmdFlags.FUA,
  [Cmd.WRITE_ZEROES]: CmdFlags.FUA | CmdFlags.NO_HOLE | CmdFlags.FAST_ZERO,
  [Cmd.BLOCK_STATUS]: CmdFlags.FUA | CmdFlags.REQ_ONE,
};

const writeLike = (t: number) => t === Cmd.WRITE || t === Cmd.TRIM || t === Cmd.WRITE_ZEROES;

/**
 * The one place every request is checked before it reaches a disk: command,
 * flags, permissions, payload size and range. Returns undefined if the request
 * may proceed, or the NBD error to answer with (the connection lives on).
 */
export function validateRequest(req: NbdRequest, ctx: ValidationContext): Rejection | undefined {
  const allowed = ALLOWED_FLAGS[req.type];
  if (allowed === undefined) return { errno: NbdErrno.EINVAL, message: `unknown command ${req.type}` };
  if (req.flags & ~allowed) {
    return { errno: NbdErrno.EINVAL, message: `flags 0x${req.flags.toString(16)} not valid for this command` };
  }
  if (req.flags & CmdFlags.FUA && !ctx.canFua) return { errno: NbdErrno.EINVAL, message: 'FUA was not negotiated' };
  if (req.flags & CmdFlags.DF && !ctx.structuredReplies) {
    return { errno: NbdErrno.EINVAL, message: 'DF flag needs structured replies' };
  }
  if (req.flags & CmdFlags.FAST_ZERO && !ctx.canFastZero) {
    return { errno: NbdErrno.EINVAL, message: 'FAST_ZERO was not negotiated' };
  }
  if (req.type === Cmd.DISC || req.type === Cmd.FLUSH) return undefined;
  if (req.type === Cmd.BLOCK_STATUS && !ctx.metaContext) {
    return { errno: NbdErrno.EINVAL, message: 'no metadata context was negotiated' };
  }
  if (writeLike(req.type) && ctx.readOnly) return { errno: NbdErrno.EPERM, message: 'export is read-only' };
  const max = ctx.maxPayload ?? MAX_PAYLOAD;
  if ((req.type === Cmd.READ || req.type === Cmd.WRITE) && req.length > max) {
    return { errno: NbdErrno.EOVERFLOW, message: `length ${req.length} exceeds the maximum payload ${max}` };
  }
  if (req.type === Cmd.BLOCK_STATUS && req.length === 0) {
    return { errno: NbdErrno.EINVAL, message: 'block status length must not be zero' };
  }
  if (req.offsetOverflow || req.offset + req.length > ctx.size) {
    const message = `request ${req.offset}+${req.length} is beyond the end of the export (${ctx.size} bytes)`;
    return { errno: writeLike(req.type) ? NbdErrno.ENOSPC : NbdErrno.EINVAL, message };
  }
  return undefined;
}
