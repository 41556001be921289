/**
 * The target's side of LAN fetches: one authenticated connection per sibling
 * replica server, requests multiplexed on it, each bounded by a timeout, and
 * a bounded number in flight per host. A host that cannot be reached, or
 * whose connection breaks, is skipped for a back-off period: its blocks come
 * over the WAN meanwhile. Never throws to its caller: a failed fetch is
 * `undefined`, and the migration goes on.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { parseAddress } from '../util/address.ts';
import { connectLink, type LinkSecurity } from '../wire/secure-link.ts';
import { Semaphore } from '../util/semaphore.ts';
import {
  REPLICA_MAGIC, REPLY_HEADER_BYTES, ReplyStatus, decodeReplyHeader, encodeRequest, type ReplicaRequest,
} from './replica-protocol.ts';

export interface ReplicaClientOptions {
  security: LinkSecurity;
  clock: Clock;
  log: Logger;
  /** A request not answered by then fails (default 5 s). */
  requestTimeoutMs?: number;
  /** A host that failed is not asked again for this long (default 10 s). */
  retryAfterMs?: number;
  /** Requests in flight per host (default 64). */
  maxInFlight?: number;
}

interface Pending {
  resolve: (data: Buffer | undefined) => void;
  timer: TimerHandle;
}

class HostConnection {
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  downUntil = 0;
  /** Until then the host is known gone (refused, or its connection broke), not merely slow. */
  goneUntil = 0;
  /** Sockets already failed (a timed-out one's own close event must not count it as gone). */
  private readonly failed = new WeakSet<net.Socket>();
  readonly limit: Semaphore;

  constructor(readonly address: string, private readonly c: ReplicaClient, maxInFlight: number) {
    this.limit = new Semaphore(maxInFlight);
  }

  private connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= (async () => {
      try {
        const s = await connectLink(parseAddress(this.address, 'replica server address'), this.c.o.security, { timeoutMs: this.c.o.requestTimeoutMs ?? 5000 });
        s.write(REPLICA_MAGIC);
        this.attach(s);
        this.socket = s;
        return s;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private attach(s: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    let greeted = false;
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!greeted) {
        if (buf.length < REPLICA_MAGIC.length) return;
        if (!buf.subarray(0, REPLICA_MAGIC.length).equals(REPLICA_MAGIC)) return this.broken(s, new Error('not a flimcd replica server'));
        buf = buf.subarray(REPLICA_MAGIC.length);
        greeted = true;
      }
      while (buf.length >= REPLY_HEADER_BYTES) {
        let h: ReturnType<typeof decodeReplyHeader>;
        try {
          h = decodeReplyHeader(buf);
        } catch (e) {
          return this.broken(s, e as Error);
        }
        if (buf.length < REPLY_HEADER_BYTES + h.length) break;
        const data = Buffer.from(buf.subarray(REPLY_HEADER_BYTES, REPLY_HEADER_BYTES + h.length));
        buf = buf.subarray(REPLY_HEADER_BYTES + h.length);
        const p = this.pending.get(h.reqId);
        if (!p) continue;
        this.pending.delete(h.reqId);
        p.timer.cancel();
        p.resolve(h.status === ReplyStatus.OK ? data : undefined);
      }
    });
    s.on('error', (e) => this.broken(s, e));
    s.on('close', () => this.broken(s, new Error('connection closed')));
  }

  /** The connection failed: every request on it fails, and the host rests a while (`gone`: it broke, not just slow). */
  broken(s: net.Socket | undefined, e: Error, gone = true): void {
    if (s && ((this.socket !== s && this.socket !== undefined) || this.failed.has(s))) return;
    if (s) this.failed.add(s);
    s?.destroy();
    this.socket = undefined;
    this.c.hostFailed(this, e, gone);
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.timer.cancel();
      p.resolve(undefined);
    }
  }

  async request(r: Omit<ReplicaRequest, 'reqId'>): Promise<Buffer | undefined> {
    let s: net.Socket;
    try {
      s = await this.connect();
    } catch (e) {
      this.c.hostFailed(this, e as Error, refused(e));
      return undefined;
    }
    const reqId = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    return new Promise<Buffer | undefined>((resolve) => {
      const ms = this.c.o.requestTimeoutMs ?? 5000;
      const timer = this.c.o.clock.setTimer(ms, () => {
        // A server that stops answering is rested like a gone one (but may only be slow: a loaded host).
        if (this.pending.delete(reqId)) resolve(undefined);
        this.broken(s, new Error(`no answer within ${ms} ms`), false);
      });
      this.pending.set(reqId, { resolve, timer });
      s.write(encodeRequest({ ...r, reqId }));
    });
  }

  /** Connects if not connected (a failure rests the host): how a waiter learns that a claim's holder is gone. */
  probe(): void {
    this.connect().catch((e: unknown) => this.c.hostFailed(this, e as Error, refused(e)));
  }

  close(): void {
    this.broken(this.socket, new Error('closed'));
  }
}

/** A connection attempt the host answered "no one here" to (not a timeout). */
function refused(e: unknown): boolean {
  // connectLink wraps the system error (its own code is flimcd's): the cause says what the network said.
  const code = ((e as { cause?: NodeJS.ErrnoException }).cause ?? (e as NodeJS.ErrnoException)).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EPIPE';
}

export class ReplicaClient {
  private readonly hosts = new Map<string, HostConnection>();
  private readonly warned = new Set<string>();
  private closed = false;
  readonly stats = { requests: 0, answered: 0, failed: 0, skipped: 0 };

  constructor(readonly o: ReplicaClientOptions) {}

  /** The block with this id from the replica server at `address`, unverified (the caller re-hashes), or undefined. */
  async fetch(address: string, r: Omit<ReplicaRequest, 'reqId'>): Promise<Buffer | undefined> {
    if (this.closed) return undefined;
    let h = this.hosts.get(address);
    if (!h) {
      h = new HostConnection(address, this, this.o.maxInFlight ?? 64);
      this.hosts.set(address, h);
    }
    if (this.o.clock.now() < h.downUntil) {
      this.stats.skipped++;
      return undefined;
    }
    const host = h;
    this.stats.requests++;
    const data = await host.limit.run(() => (this.o.clock.now() < host.downUntil ? Promise.resolve(undefined) : host.request(r)));
    if (data) this.stats.answered++;
    else this.stats.failed++;
    return data;
  }

  /**
   * Whether the replica server at `address` is known gone now: it refused a
   * connection, or one to it broke, within the back-off period (a server that
   * is only slow to answer is not gone: its host may just be loaded). Asking
   * keeps a connection to the host open (started in the background), so a
   * host that is gone, or dies later, is known as such a moment after.
   */
  isDown(address: string): boolean {
    if (this.closed) return true;
    let h = this.hosts.get(address);
    if (!h) {
      h = new HostConnection(address, this, this.o.maxInFlight ?? 64);
      this.hosts.set(address, h);
    }
    if (this.o.clock.now() < h.goneUntil) return true;
    if (this.o.clock.now() >= h.downUntil) h.probe();
    return false;
  }

  /** A host failed: rest it, and say so once per host. */
  hostFailed(h: HostConnection, e: Error, gone: boolean): void {
    if (this.closed) return;
    h.downUntil = this.o.clock.now() + (this.o.retryAfterMs ?? 10_000);
    if (gone) h.goneUntil = h.downUntil;
    if (!this.warned.has(h.address)) {
      this.warned.add(h.address);
      this.o.log.warn({ replicaServer: h.address, err: e.message }, 'replica server on a sibling host unavailable: its blocks come over the WAN instead');
    } else {
      this.o.log.debug({ replicaServer: h.address, err: e.message }, 'replica server still unavailable');
    }
  }

  close(): void {
    this.closed = true;
    for (const h of this.hosts.values()) h.close();
    this.hosts.clear();
  }
}
