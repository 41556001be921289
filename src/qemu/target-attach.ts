/**
 * Before the switch-over hands the guest to the target QEMU, its disk must be
 * the live target agent's export: a QEMU left connected to an aborted agent's
 * socket (an earlier attempt) would give the guest I/O errors right after the
 * switch-over. Two views must agree: QEMU has an NBD node on the target
 * agent's export address, and the target agent has a client on that export.
 */
import { ErrorCode, FlimcdError } from '../errors.ts';
import type { QmpClient } from './qmp.ts';

interface NamedBlockNode {
  'node-name'?: string;
  drv?: string;
  file?: string;
}

/** Whether QEMU's NBD filename (nbd+unix:///NAME?socket=PATH, nbd://HOST:PORT/NAME, json:{…}) points at `address` (unix:PATH, tcp:HOST:PORT). */
export function nbdFileMatches(file: string, address: string): boolean {
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    if (file.startsWith('json:')) return file.includes(`"path": "${path}"`) || file.includes(`"path":"${path}"`);
    const m = /[?&]socket=([^&]*)/.exec(file);
    return m !== null && decodeURIComponent(m[1]!) === path;
  }
  if (address.startsWith('tcp:')) {
    const hostPort = address.slice('tcp:'.length);
    return file.startsWith(`nbd://${hostPort}/`) || file === `nbd://${hostPort}` || (file.startsWith('json:') && file.includes(hostPort.slice(hostPort.lastIndexOf(':') + 1)) && file.includes(hostPort.slice(0, hostPort.lastIndexOf(':'))));
  }
  return false;
}

/**
 * Throws (VM_TARGET_DETACHED) unless the target QEMU's disk is attached to the
 * target agent's live export. `targetStatus` is the target agent's GET /status
 * (its `nbd` address and `vmConnections`).
 */
export async function checkTargetAttached(dst: QmpClient, targetStatus: Record<string, unknown>): Promise<{ node: string; export: string }> {
  const address = targetStatus.nbd;
  if (typeof address !== 'string') throw new FlimcdError('the target agent does not say where its VM export listens (no nbd in its status): cannot check the target QEMU is attached to it', ErrorCode.VM_TARGET_DETACHED);
  const nodes = await dst.execute<NamedBlockNode[]>('query-named-block-nodes', { flat: true });
  const nbd = nodes.filter((n) => n.drv === 'nbd');
  const attached = nbd.find((n) => typeof n.file === 'string' && nbdFileMatches(n.file, address));
  if (!attached) {
    const seen = nbd.map((n) => n.file).join(', ') || 'no NBD disk';
    throw new FlimcdError(`the target QEMU's disk is not on the target agent's export ${address} (it has ${seen}); start the target QEMU with -blockdev driver=nbd on that export`, ErrorCode.VM_TARGET_DETACHED);
  }
  const clients = typeof targetStatus.vmConnections === 'number' ? targetStatus.vmConnections : 0;
  if (clients < 1) {
    throw new FlimcdError(`the target agent has no client on its export ${address}: the target QEMU's NBD connection (node ${attached['node-name'] ?? '?'}) goes to an earlier agent's socket, or is down; restart the target QEMU against the running target agent`, ErrorCode.VM_TARGET_DETACHED);
  }
  return { node: attached['node-name'] ?? '', export: address };
}
