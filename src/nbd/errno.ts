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
