import { isIPv4 } from 'node:net';
import { UsageError } from '../errors.ts';

/** Where to listen or connect: `unix:PATH` or `tcp:HOST:PORT` (IPv6 as `tcp:[::1]:PORT`). */
export type Address = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseAddress(text: string, what = 'address'): Address {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!path) throw new UsageError(`${what}: "unix:" needs a socket path, e.g. unix:/run/flimcd.sock`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp:')) {
    const rest = text.slice(4);
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(rest);
    if (!m) throw new UsageError(`${what}: "${text}" is not tcp:HOST:PORT`);
    const host = m[1] ?? (m[2] || '127.0.0.1');
    const port = Number(m[3]);
    if (!(port >= 0 && port <= 65535)) throw new UsageError(`${what}: port ${m[3]} is out of range 0-65535`);
    return { kind: 'tcp', host, port };
  }
  throw new UsageError(`${what}: "${text}" must start with unix: or tcp: (e.g. unix:/tmp/vm.sock, tcp:127.0.0.1:10809)`);
}

export function formatAddress(a: Address): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `tcp:[${a.host}]:${a.port}` : `tcp:${a.host}:${a.port}`;
}

/** An nbd:// URI for libnbd tools and qemu (nbd+unix:///NAME?socket=PATH for unix sockets). */
export function nbdUri(a: Address, exportName = ''): string {
  if (a.kind === 'unix') return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${a.path}`;
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `nbd://${host}:${a.port}/${encodeURIComponent(exportName)}`;
}

/**
 * Loopback names and addresses: localhost, ::1, 127.0.0.0/8, and 127/8 as an
 * IPv4-mapped IPv6 address. The endpoints without authentication (control,
 * WAN emulator control) refuse anything else; the NBD export warns.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}
