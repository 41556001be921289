import { ErrorCode, type FlimcdError } from '../errors.ts';

/** NBD error values on the wire (doc/proto.md "Error values"): Linux errno numbers. */
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrnoValue = (typeof NbdErrno)[keyof typeof NbdErrno];

const names = new Map<number, string>(Object.entries(NbdErrno).map(([k, v]) => [v, k]));
export function nbdErrnoName(errno: number): string {
  return names.get(errno) ?? `errno ${errno}`;
}

/**
 * What an NBD server puts on the wire for each error code. Codes not listed
 * (I/O, protocol, link, anything not about the request itself) are EIO.
 */
const ERRNO_OF_CODE: Partial<Record<ErrorCode, NbdErrnoValue>> = {
  [ErrorCode.INVALID_ARGUMENT]: NbdErrno.EINVAL,
  [ErrorCode.USAGE]: NbdErrno.EINVAL,
  [ErrorCode.TRACE_FORMAT]: NbdErrno.EINVAL,
  [ErrorCode.NO_SPACE]: NbdErrno.ENOSPC,
  [ErrorCode.READ_ONLY]: NbdErrno.EPERM,
  [ErrorCode.PERMISSION]: NbdErrno.EPERM,
  [ErrorCode.AUTH]: NbdErrno.EPERM,
  [ErrorCode.NO_MEMORY]: NbdErrno.ENOMEM,
  [ErrorCode.OVERFLOW]: NbdErrno.EOVERFLOW,
  [ErrorCode.NOT_SUPPORTED]: NbdErrno.ENOTSUP,
  [ErrorCode.SHUTDOWN]: NbdErrno.ESHUTDOWN,
};

/** The NBD errno a server replies with for this error. */
export function nbdErrnoOf(err: FlimcdError): NbdErrnoValue {
  return ERRNO_OF_CODE[err.code] ?? NbdErrno.EIO;
}
