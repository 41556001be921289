/**
 * One error base class with stable codes (as undici does). Every error that
 * crosses a module boundary is a FlimcdError; `code` never changes meaning,
 * `nbdErrno` is what an NBD server puts on the wire for it.
 */
import { NbdErrno } from './nbd/errno.ts';

export class FlimcdError extends Error {
  readonly code: string;
  readonly nbdErrno: number;
  constructor(message: string, code = 'FLIMCD_ERR', nbdErrno: number = NbdErrno.EIO, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.nbdErrno = nbdErrno;
  }
}

/** A request whose arguments are wrong (bad offset, alignment, flags). */
export class InvalidArgumentError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'FLIMCD_ERR_INVALID_ARGUMENT', NbdErrno.EINVAL, options);
  }
}

/** A write, trim or zero that reaches past the end of the disk. */
export class NoSpaceError extends FlimcdError {
  constructor(message: string) {
    super(message, 'FLIMCD_ERR_NO_SPACE', NbdErrno.ENOSPC);
  }
}

/** A modifying request against a read-only disk or export. */
export class ReadOnlyError extends FlimcdError {
  constructor(message = 'disk is read-only') {
    super(message, 'FLIMCD_ERR_READ_ONLY', NbdErrno.EPERM);
  }
}

/** A request larger than this side is willing to handle in one go. */
export class OverflowError extends FlimcdError {
  constructor(message: string) {
    super(message, 'FLIMCD_ERR_OVERFLOW', NbdErrno.EOVERFLOW);
  }
}

/** The operation is not supported by this disk (e.g. fast zero without a fast path). */
export class NotSupportedError extends FlimcdError {
  constructor(message: string) {
    super(message, 'FLIMCD_ERR_NOT_SUPPORTED', NbdErrno.ENOTSUP);
  }
}

/** An I/O failure of the underlying storage or a remote peer. */
export class IoError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'FLIMCD_ERR_IO', NbdErrno.EIO, options);
  }
}

/** The disk or connection has been closed or is shutting down. */
export class ShutdownError extends FlimcdError {
  constructor(message = 'shutting down') {
    super(message, 'FLIMCD_ERR_SHUTDOWN', NbdErrno.ESHUTDOWN);
  }
}

/** The peer broke the protocol; the connection must be dropped. */
export class ProtocolError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'FLIMCD_ERR_PROTOCOL', NbdErrno.EIO, options);
  }
}

/** The peer agent failed (or refused) mutual authentication on the link. Not worth retrying. */
export class AuthError extends FlimcdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'FLIMCD_ERR_AUTH', NbdErrno.EPERM, options);
  }
}

/** Bad command-line input or configuration. The CLI exits 2 on it. */
export class UsageError extends FlimcdError {
  constructor(message: string) {
    super(message, 'FLIMCD_ERR_USAGE', NbdErrno.EINVAL);
  }
}

/** A workload trace file that does not follow its format; `line` is 1-based. */
export class TraceFormatError extends FlimcdError {
  constructor(message: string, readonly line: number) {
    super(`line ${line}: ${message}`, 'FLIMCD_ERR_TRACE_FORMAT', NbdErrno.EINVAL);
  }
}

/** Map anything thrown (including Node system errors) to a FlimcdError. */
export function toFlimcdError(err: unknown): FlimcdError {
  if (err instanceof FlimcdError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  const msg = e?.message ?? String(err);
  switch (e?.code) {
    case 'ENOSPC': return new NoSpaceError(msg);
    case 'EROFS': case 'EPERM': case 'EACCES': return new FlimcdError(msg, 'FLIMCD_ERR_PERMISSION', NbdErrno.EPERM, { cause: err });
    case 'EINVAL': return new InvalidArgumentError(msg, { cause: err });
    case 'EOPNOTSUPP': case 'ENOTSUP': case 'ENOSYS': return new NotSupportedError(msg);
    case 'ENOMEM': return new FlimcdError(msg, 'FLIMCD_ERR_NO_MEMORY', NbdErrno.ENOMEM, { cause: err });
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

/**
 * QMP failures (src/qemu/qmp.ts). Codes: FLIMCD_ERR_QMP (QEMU answered a command
 * with an error; `qmpClass` holds QEMU's error class), FLIMCD_ERR_QMP_TIMEOUT
 * (no answer or event in time), FLIMCD_ERR_QMP_CLOSED (the socket closed
 * unexpectedly), FLIMCD_ERR_QMP_CONNECT (cannot reach the QMP socket),
 * FLIMCD_ERR_QMP_PROTOCOL (not QMP on the other end).
 */
export class QmpError extends FlimcdError {
  constructor(message: string, code = 'FLIMCD_ERR_QMP', readonly qmpClass?: string, options?: { cause?: unknown }) {
    super(message, code, NbdErrno.EIO, options);
  }
}

/** The peer at an agent address is something else (an NBD or HTTP server, another TLS service): retrying cannot help. */
export class WrongPeerError extends FlimcdError {
  constructor(message: string, readonly speaks: string) {
    super(message, 'FLIMCD_ERR_WRONG_PEER', NbdErrno.EIO);
  }
}
