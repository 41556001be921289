/**
 * Listening on a unix socket path that a process left behind when it died:
 * the file stays and makes listen() fail with EADDRINUSE. Every listener
 * (agents, NBD export, WAN emulator, control endpoints) removes such a stale
 * socket before it listens, but never a live one (that would silently steal
 * another process's address) and never a file that is not a socket.
 */
import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import net from 'node:net';
import { UsageError } from '../errors.ts';

/** Is something accepting connections on this unix socket? */
export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Removes the socket at `path` if nothing listens on it; does nothing when
 * the path does not exist. Throws a UsageError (prefixed with `what`, e.g.
 * "--listen") when the path is not a socket or another process listens there.
 */
export async function removeStaleSocket(path: string, what: string): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new UsageError(`${what}: ${path} exists and is not a socket; refusing to replace it`);
  if (await socketAlive(path)) throw new UsageError(`${what}: another process is listening at unix:${path}`);
  try {
    unlinkSync(path);
  } catch (e) {
    // Another process removed it first: the path is free either way.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
