/** Sockets for tests: a free TCP port, a listener closed after the test, an echo server. */
import net from 'node:net';
import { spawn } from 'node:child_process';
import type { Address } from '../../src/util/address.ts';
import type { TestCtx } from './test-context.ts';

const LOOPBACK: Address = { kind: 'tcp', host: '127.0.0.1', port: 0 };

/** A loopback TCP port that was free a moment ago (for a process that must be told its port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Listens at `addr` (default: a free loopback port); after the test, destroys its sockets and closes it. */
export async function listenFor(t: TestCtx, server: net.Server, addr: Address = LOOPBACK): Promise<Address> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => (addr.kind === 'unix' ? server.listen(addr.path, r) : server.listen(addr.port, addr.host, r)));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return addr.kind === 'unix' ? addr : { kind: 'tcp', host: addr.host, port: (server.address() as net.AddressInfo).port };
}

/** Echoes every byte back (half-close is passed on); `accepted` lists its connections. */
export async function echoServer(t: TestCtx, addr?: Address): Promise<{ address: Address; accepted: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    s.setNoDelay?.(true);
    s.on('error', () => {});
    s.pipe(s);
  });
  return { address: await listenFor(t, server, addr), accepted };
}

/** Leaves a stale unix socket at `path`: a process listens there and dies by SIGKILL without closing it. */
export function leaveStaleSocket(path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    child.on('error', reject);
    child.on('exit', () => resolve());
  });
}
