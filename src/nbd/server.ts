import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { isLoopbackHost, type Address } from '../util/address.ts';
import { removeStaleSocket } from '../util/unix-socket.ts';
import { log as rootLog } from '../util/log.ts';
import { UsageError } from '../errors.ts';
import type { NbdExport } from './export.ts';
import type { ExportDirectory } from './server-handshake.ts';
import { NbdConnection, DEFAULT_LIMITS, type ConnectionLimits } from './server-connection.ts';

export interface NbdServerOptions {
  exports: NbdExport[];
  /** Most simultaneous client connections; more are refused (closed) at accept. */
  maxConnections?: number;
  limits?: Partial<ConnectionLimits>;
  log?: Logger;
}

/**
 * An NBD server (fixed newstyle, structured replies, base:allocation) serving
 * any Disk. Several clients at once; each connection is independent, so a
 * misbehaving client only loses its own connection.
 */
export class NbdServer implements ExportDirectory {
  private readonly exports: NbdExport[];
  private readonly connections = new Set<NbdConnection>();
  private readonly server: net.Server;
  private readonly log: Logger;
  private readonly limits: ConnectionLimits;
  private readonly maxConnections: number;
  private unixPath: string | undefined;
  private closing: Promise<void> | undefined;
  /** Callers of whenIdle() waiting for the last client to go. */
  private idleWaiters: Array<() => void> = [];

  constructor(opts: NbdServerOptions) {
    if (opts.exports.length === 0) throw new UsageError('an NBD server needs at least one export');
    const names = new Set(opts.exports.map((e) => e.name));
    if (names.size !== opts.exports.length) throw new UsageError('export names must be unique');
    this.exports = opts.exports;
    this.log = opts.log ?? rootLog.child({ component: 'nbd-server' });
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.maxConnections = opts.maxConnections ?? 256;
    this.server = net.createServer({ noDelay: true }, (s) => this.accept(s));
  }

  /** The export called `name`; the empty name is the default export (the first one). */
  find(name: string): NbdExport | undefined {
    return this.exports.find((e) => e.name === name) ?? (name === '' ? this.exports[0] : undefined);
  }

  list(): NbdExport[] {
    return this.exports;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Resolves once no client is connected (at once when none is): e.g. the VM has let go of its disk. */
  whenIdle(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts listening; resolves with the bound address (with the real port when 0 was asked). */
  async listen(addr: Address): Promise<Address> {
    if (addr.kind === 'unix') await removeStaleSocket(addr.path, 'NBD export');
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(e.code === 'EADDRINUSE' ? new UsageError(`address already in use: ${describe(addr)}`) : e);
      };
      this.server.once('error', onError);
      const done = () => {
        this.server.off('error', onError);
        this.server.on('error', (e) => this.log.error({ err: e.message }, 'NBD listener error'));
        if (addr.kind === 'unix') return resolve(addr);
        if (!isLoopbackHost(addr.host)) {
          this.log.warn({ listen: describe(addr) }, 'NBD export reachable from the network: NBD has no authentication, prefer a unix socket or loopback');
        }
        const a = this.server.address() as net.AddressInfo;
        resolve({ kind: 'tcp', host: addr.host, port: a.port });
      };
      if (addr.kind === 'unix') {
        this.unixPath = addr.path;
        this.server.listen(addr.path, done);
      } else {
        this.server.listen(addr.port, addr.host, done);
      }
    });
  }

  /** Graceful stop: no new connections; in-flight requests finish and are flushed; then sockets close. */
  close(timeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        void Promise.all([...this.connections].map((c) => c.shutdown(timeoutMs))).catch(() => {});
      });
      await Promise.all([...this.connections].map((c) => c.done));
      if (this.unixPath && existsSync(this.unixPath)) {
        try { unlinkSync(this.unixPath); } catch { /* already gone */ }
      }
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || this.connections.size >= this.maxConnections) {
      this.log.warn({ connections: this.connections.size }, 'refusing NBD connection: at limit or shutting down');
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const conn = new NbdConnection(socket, this, this.log.child({ peer }), this.limits);
    this.connections.add(conn);
    void conn.done.finally(() => {
      this.connections.delete(conn);
      if (this.connections.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }
}

function describe(a: Address): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`;
}
