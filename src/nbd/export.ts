import type { Disk } from '../block/disk.ts';
import { TxFlags } from './protocol.ts';

/** One named export a server offers. */
export interface NbdExport {
  name: string;
  description?: string;
  disk: Disk;
}

/** Transmission flags for an export, derived from the disk's capabilities. */
export function transmissionFlags(disk: Disk, structuredReplies: boolean): number {
  const c = disk.capabilities;
  let f = TxFlags.HAS_FLAGS;
  if (c.readOnly) f |= TxFlags.READ_ONLY;
  if (c.canFlush) f |= TxFlags.SEND_FLUSH;
  if (c.canFua) f |= TxFlags.SEND_FUA;
  if (c.rotational) f |= TxFlags.ROTATIONAL;
  // Advertised even when read-only so a write-like request gets a proper EPERM, as qemu-nbd does.
  if (c.canTrim || c.readOnly) f |= TxFlags.SEND_TRIM;
  if (c.canZero || c.readOnly) f |= TxFlags.SEND_WRITE_ZEROES;
  if (c.canFastZero && !c.readOnly) f |= TxFlags.SEND_FAST_ZERO;
  if (structuredReplies) f |= TxFlags.SEND_DF;
  if (c.canMultiConn) f |= TxFlags.CAN_MULTI_CONN;
  f |= TxFlags.SEND_CACHE;
  return f;
}
