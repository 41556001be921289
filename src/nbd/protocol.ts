/**
 * NBD wire constants, from NetworkBlockDevice/nbd doc/proto.md.
 * Everything on the wire is big-endian.
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server, 16 bits). */
export const HandshakeFlags = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;
/** Client flags (32 bits). */
export const ClientFlags = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;

/** Transmission flags (16 bits). */
export const TxFlags = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

const REP_ERR = 0x80000000;
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REP_ERR + 1,
  ERR_POLICY: REP_ERR + 2,
  ERR_INVALID: REP_ERR + 3,
  ERR_PLATFORM: REP_ERR + 4,
  ERR_TLS_REQD: REP_ERR + 5,
  ERR_UNKNOWN: REP_ERR + 6,
  ERR_SHUTDOWN: REP_ERR + 7,
  ERR_BLOCK_SIZE_REQD: REP_ERR + 8,
  ERR_TOO_BIG: REP_ERR + 9,
} as const;
export function isRepError(type: number): boolean {
  return (type & REP_ERR) !== 0;
}

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

export const CmdFlags = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  PAYLOAD_LEN: 1 << 5,
} as const;

export const ReplyFlags = { DONE: 1 } as const;

export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;
export function isReplyError(type: number): boolean {
  return (type & (1 << 15)) !== 0;
}

/** base:allocation flags. */
export const StateFlags = { HOLE: 1, ZERO: 2 } as const;
export const BASE_ALLOCATION = 'base:allocation';

/** Sizes of fixed wire structures. */
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_HEADER_SIZE = 20;
/** Longest option payload we accept during the handshake (names are at most 4096 bytes per spec). */
export const MAX_OPTION_LENGTH = 64 * 1024;
/** Longest export name or description string the spec allows. */
export const MAX_STRING = 4096;
/** Largest READ/WRITE payload we serve or send in one request (also advertised as BLOCK_SIZE maximum). */
export const MAX_PAYLOAD = 32 * 1024 * 1024;

export const cmdName = (type: number): string =>
  Object.entries(Cmd).find(([, v]) => v === type)?.[0] ?? `CMD_${type}`;
export const optName = (opt: number): string =>
  Object.entries(Opt).find(([, v]) => v === opt)?.[0] ?? `OPT_${opt}`;
