/**
 * One error base class with a closed list of stable codes (as undici's
 * lib/core/errors.js). Every error that crosses a module boundary is a
 * FlimcdError whose `code` is one of ErrorCode; a code never changes meaning
 * and none is built at runtime. What an NBD server puts on the wire for each
 * code is decided in src/nbd/errno.ts, not here.
 */

/** Every code a FlimcdError can carry. Users and scripts match on these strings: keep them stable. */
export const ErrorCode = {
  // Storage and requests (what an NBD client sees, see src/nbd/errno.ts).
  INVALID_ARGUMENT: 'FLIMCD_ERR_INVALID_ARGUMENT',
  NO_SPACE: 'FLIMCD_ERR_NO_SPACE',
  READ_ONLY: 'FLIMCD_ERR_READ_ONLY',
  PERMISSION: 'FLIMCD_ERR_PERMISSION',
  NO_MEMORY: 'FLIMCD_ERR_NO_MEMORY',
  OVERFLOW: 'FLIMCD_ERR_OVERFLOW',
  NOT_SUPPORTED: 'FLIMCD_ERR_NOT_SUPPORTED',
  IO: 'FLIMCD_ERR_IO',
  SHUTDOWN: 'FLIMCD_ERR_SHUTDOWN',
  // Links and peers.
  PROTOCOL: 'FLIMCD_ERR_PROTOCOL',
  AUTH: 'FLIMCD_ERR_AUTH',
  LINK_LOST: 'FLIMCD_ERR_LINK_LOST',
  // Input.
  USAGE: 'FLIMCD_ERR_USAGE',
  TRACE_FORMAT: 'FLIMCD_ERR_TRACE_FORMAT',
  SIZE_MISMATCH: 'FLIMCD_ERR_SIZE_MISMATCH',
  OPENSSL: 'FLIMCD_ERR_OPENSSL',
  NOT_INDEXED: 'FLIMCD_ERR_NOT_INDEXED',
  STATE: 'FLIMCD_ERR_STATE',
  TIMEOUT: 'FLIMCD_ERR_TIMEOUT',
  // A migration's life.
  ABORTED: 'FLIMCD_ERR_ABORTED',
  ALREADY_DONE: 'FLIMCD_ERR_ALREADY_DONE',
  RESUME: 'FLIMCD_ERR_RESUME',
  // The target agent refused a HELLO; the reason came over the wire (see targetRefusalCode).
  TARGET_VERSION: 'FLIMCD_ERR_TARGET_VERSION',
  TARGET_GEOMETRY: 'FLIMCD_ERR_TARGET_GEOMETRY',
  TARGET_BUSY: 'FLIMCD_ERR_TARGET_BUSY',
  TARGET_STALE_STATE: 'FLIMCD_ERR_TARGET_STALE_STATE',
  TARGET_SETUP: 'FLIMCD_ERR_TARGET_SETUP',
  TARGET_TLS_REQUIRED: 'FLIMCD_ERR_TARGET_TLS_REQUIRED',
  /** The two agents name content differently (`--content-hash`): their ids, references and Merkle roots would never match. */
  TARGET_CONTENT_ID: 'FLIMCD_ERR_TARGET_CONTENT_ID',
  /** A refusal reason this version does not know (a newer or foreign target). */
  TARGET_REFUSED: 'FLIMCD_ERR_TARGET_REFUSED',
  /** The target does not answer plan probes (an older flimcd). */
  TARGET_NO_PLAN: 'FLIMCD_ERR_TARGET_NO_PLAN',
  /** What answered at an agent address is not a flimcd agent (an NBD or HTTP server, another TLS service). */
  WRONG_PEER: 'FLIMCD_ERR_WRONG_PEER',
  /** What answered at a --control address is not a flimcd agent's control endpoint. */
  NOT_AN_AGENT: 'FLIMCD_ERR_NOT_AN_AGENT',
  // Control endpoint (src/control/).
  CONTROL: 'FLIMCD_ERR_CONTROL',
  CONTROL_BODY: 'FLIMCD_ERR_CONTROL_BODY',
  CONTROL_NOT_FOUND: 'FLIMCD_ERR_CONTROL_NOT_FOUND',
  CONTROL_METHOD: 'FLIMCD_ERR_CONTROL_METHOD',
  CONTROL_INTERNAL: 'FLIMCD_ERR_CONTROL_INTERNAL',
  CONTROL_REFUSED: 'FLIMCD_ERR_CONTROL_REFUSED',
  CONTROL_UNREACHABLE: 'FLIMCD_ERR_CONTROL_UNREACHABLE',
  CUTOVER_REFUSED: 'FLIMCD_ERR_CUTOVER_REFUSED',
  ABORT_REFUSED: 'FLIMCD_ERR_ABORT_REFUSED',
  /** POST /retry while a migration runs, or after one that moved the VM. */
  RETRY_REFUSED: 'FLIMCD_ERR_RETRY_REFUSED',
  // Simulator (src/sim/).
  SIM_STALLED: 'FLIMCD_ERR_SIM_STALLED',
  SIM_LIMIT: 'FLIMCD_ERR_SIM_LIMIT',
  SIM_BASE: 'FLIMCD_ERR_SIM_BASE',
  SIM_REPLICA: 'FLIMCD_ERR_SIM_REPLICA',
  // QEMU, QMP and whole-VM migration (src/qemu/).
  QEMU: 'FLIMCD_ERR_QEMU',
  QMP: 'FLIMCD_ERR_QMP',
  QMP_TIMEOUT: 'FLIMCD_ERR_QMP_TIMEOUT',
  QMP_CLOSED: 'FLIMCD_ERR_QMP_CLOSED',
  QMP_CONNECT: 'FLIMCD_ERR_QMP_CONNECT',
  QMP_PROTOCOL: 'FLIMCD_ERR_QMP_PROTOCOL',
  GUEST_KERNEL: 'FLIMCD_ERR_GUEST_KERNEL',
  GUEST_TIMEOUT: 'FLIMCD_ERR_GUEST_TIMEOUT',
  VM_STATE: 'FLIMCD_ERR_VM_STATE',
  VM_MIGRATION: 'FLIMCD_ERR_VM_MIGRATION',
  VM_POSTCOPY: 'FLIMCD_ERR_VM_POSTCOPY',
  VM_TIMEOUT: 'FLIMCD_ERR_VM_TIMEOUT',
  /** The target QEMU's disk is not attached to the live target agent's export. */
  VM_TARGET_DETACHED: 'FLIMCD_ERR_VM_TARGET_DETACHED',
  /** The guest saw I/O errors during the migration. */
  VM_GUEST_IO_ERRORS: 'FLIMCD_ERR_VM_GUEST_IO_ERRORS',
  INTERRUPTED: 'FLIMCD_ERR_INTERRUPTED',
  // The datacenter-wide content locator and LAN fetches from sibling hosts (src/locator/).
  LOCATOR: 'FLIMCD_ERR_LOCATOR',
  REPLICA_FETCH: 'FLIMCD_ERR_REPLICA_FETCH',
  /** The qemu-storage-daemon serving a qcow2 image exited while flimcd used it (src/image/). */
  STORAGE_DAEMON: 'FLIMCD_ERR_STORAGE_DAEMON',
  /** A test rig's own failure (an injected fault that did not bite, a helper command that failed). */
  TEST: 'FLIMCD_ERR_TEST',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Is this string one of ErrorCode (e.g. a code read from a peer's answer)? */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code);
}

export class FlimcdError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A request whose arguments are wrong (bad offset, alignment, flags). */
export class InvalidArgumentError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.INVALID_ARGUMENT, options);
  }
}

/** A write, trim or zero that reaches past the end of the disk. */
export class NoSpaceError extends FlimcdError {
  constructor(message: string) {
    super(message, ErrorCode.NO_SPACE);
  }
}

/** A modifying request against a read-only disk or export. */
export class ReadOnlyError extends FlimcdError {
  constructor(message = 'disk is read-only') {
    super(message, ErrorCode.READ_ONLY);
  }
}

/** A request larger than this side is willing to handle in one go. */
export class OverflowError extends FlimcdError {
  constructor(message: string) {
    super(message, ErrorCode.OVERFLOW);
  }
}

/** The operation is not supported by this disk (e.g. fast zero without a fast path). */
export class NotSupportedError extends FlimcdError {
  constructor(message: string) {
    super(message, ErrorCode.NOT_SUPPORTED);
  }
}

/** An I/O failure of the underlying storage or a remote peer. */
export class IoError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.IO, options);
  }
}

/** The disk or connection has been closed or is shutting down. */
export class ShutdownError extends FlimcdError {
  constructor(message = 'shutting down') {
    super(message, ErrorCode.SHUTDOWN);
  }
}

/** The peer broke the protocol; the connection must be dropped. */
export class ProtocolError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.PROTOCOL, options);
  }
}

/** The peer agent failed (or refused) mutual authentication on the link. Not worth retrying. */
export class AuthError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ErrorCode.AUTH, options);
  }
}

/** Bad command-line input or configuration. The CLI exits 2 on it. */
export class UsageError extends FlimcdError {
  constructor(message: string) {
    super(message, ErrorCode.USAGE);
  }
}

/** A workload trace file that does not follow its format; `line` is 1-based. */
export class TraceFormatError extends FlimcdError {
  constructor(message: string, readonly line: number) {
    super(`line ${line}: ${message}`, ErrorCode.TRACE_FORMAT);
  }
}

/** Map anything thrown (including Node system errors) to a FlimcdError. */
export function toFlimcdError(err: unknown): FlimcdError {
  if (err instanceof FlimcdError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  const msg = e?.message ?? String(err);
  switch (e?.code) {
    case 'ENOSPC': return new NoSpaceError(msg);
    case 'EROFS': case 'EPERM': case 'EACCES': return new FlimcdError(msg, ErrorCode.PERMISSION, { cause: err });
    case 'EINVAL': return new InvalidArgumentError(msg, { cause: err });
    case 'EOPNOTSUPP': case 'ENOTSUP': case 'ENOSYS': return new NotSupportedError(msg);
    case 'ENOMEM': return new FlimcdError(msg, ErrorCode.NO_MEMORY, { cause: err });
    default: return new IoError(msg, { cause: err });
  }
}

/** The Node system error code (ENOENT, EACCES, ...) of an error or of its cause, if any. */
export function systemErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && !e.code.startsWith('FLIMCD_')) return e.code;
  }
  return undefined;
}

/** The codes a QmpError can carry (see QmpError). */
export type QmpErrorCode = typeof ErrorCode.QMP | typeof ErrorCode.QMP_TIMEOUT | typeof ErrorCode.QMP_CLOSED | typeof ErrorCode.QMP_CONNECT | typeof ErrorCode.QMP_PROTOCOL;

/**
 * QMP failures (src/qemu/qmp.ts). Codes: FLIMCD_ERR_QMP (QEMU answered a command
 * with an error; `qmpClass` holds QEMU's error class), FLIMCD_ERR_QMP_TIMEOUT
 * (no answer or event in time), FLIMCD_ERR_QMP_CLOSED (the socket closed
 * unexpectedly), FLIMCD_ERR_QMP_CONNECT (cannot reach the QMP socket),
 * FLIMCD_ERR_QMP_PROTOCOL (not QMP on the other end).
 */
export class QmpError extends FlimcdError {
  constructor(message: string, code: QmpErrorCode = ErrorCode.QMP, readonly qmpClass?: string, options?: { cause?: unknown }) {
    super(message, code, options);
  }
}

/**
 * Why a target agent refuses a HELLO: the `code` of its ERROR message on the
 * wire, and the code the source raises for it.
 */
export const TargetRefusal = {
  VERSION: ErrorCode.TARGET_VERSION,
  GEOMETRY: ErrorCode.TARGET_GEOMETRY,
  BUSY: ErrorCode.TARGET_BUSY,
  STALE_STATE: ErrorCode.TARGET_STALE_STATE,
  SETUP: ErrorCode.TARGET_SETUP,
  TLS_REQUIRED: ErrorCode.TARGET_TLS_REQUIRED,
  CONTENT_ID: ErrorCode.TARGET_CONTENT_ID,
} as const;
export type TargetRefusalReason = keyof typeof TargetRefusal;

/** The code for a target's ERROR message: its reason looked up in TargetRefusal, anything else TARGET_REFUSED. */
export function targetRefusalCode(reason: string): ErrorCode {
  return Object.hasOwn(TargetRefusal, reason) ? TargetRefusal[reason as TargetRefusalReason] : ErrorCode.TARGET_REFUSED;
}

/** The peer at an agent address is something else (an NBD or HTTP server, another TLS service): retrying cannot help. */
export class WrongPeerError extends FlimcdError {
  constructor(message: string, readonly speaks: string) {
    super(message, ErrorCode.WRONG_PEER);
  }
}
