/**
 * WanProxy: a TCP (or unix socket) proxy whose connections all share one
 * emulated WAN link (see link.ts / schedule.ts), plus faults on command.
 *
 * Each accepted connection gets an upstream connection to `to`. Bytes read
 * from either socket go onto the link in their direction and are written to
 * the other socket when the link says they left the far end. End-of-stream
 * (FIN) travels the link as a marker behind the data, so half-close works
 * and arrives late as it would; a reset or error becomes a reset of the
 * other side, after the same delay.
 *
 * Back-pressure: when a direction holds more than its bound, each socket
 * that sends in that direction is paused until the link drains (so a fast
 * sender is slowed by TCP, not buffered without limit); when a destination
 * socket does not keep up with writes, its source is paused until 'drain'.
 *
 * Not emulated: the TCP handshake's round trip (connection set-up is free),
 * loss, jitter, reordering.
 */
import net from 'node:net';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { FlimcdError, UsageError, ErrorCode } from '../errors.ts';
import { realClock, type Clock, type TimerHandle } from '../util/clock.ts';
import { removeStaleSocket } from '../util/unix-socket.ts';
import { WanLink, DIRECTIONS, type Direction, type LinkSettings, type LinkStats, type Segment } from './link.ts';

export type { Direction, LinkSettings } from './link.ts';

export interface WanProxyOptions extends LinkSettings {
  listen: Address;
  to: Address;
  /** Per-direction queue beyond the one-way BDP (see WanLinkOptions.queueBytes). */
  queueBytes?: number;
  /** Clock (default: real time). */
  clock?: Clock;
  /** See WanLinkOptions.toleranceMs; default 0.5 ms with the real clock, 0 with another. */
  toleranceMs?: number;
  /** Called with a short description of connection-level events worth a debug line. */
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

export interface WanStats extends LinkStats {
  /**
   * Bytes that left the link and were written to a destination socket that
   * has not taken them yet (a receiver slower than the link), per direction.
   * Held + buffered is all the proxy keeps in memory for a direction.
   */
  buffered: Record<Direction, number>;
  connections: {
    /** Open now. */
    active: number;
    /** Accepted since start. */
    total: number;
    /** Destroyed by cut(). */
    cut: number;
    /** Upstream connections that failed (refused, unreachable). */
    upstreamFailed: number;
  };
  /** Milliseconds left during which new connections are refused (0 when accepting). */
  refusingForMs: number;
}

interface Chunk {
  conn: Conn;
  dir: Direction;
  kind: 'data' | 'end' | 'reset';
  buf?: Buffer;
}

type PauseReason = 'link' | 'write';

class Conn {
  readonly id: number;
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Cut or torn down: no more bytes are moved for it. */
  dead = false;
  /** How the source of a direction finished: a clean end (FIN) or a reset/error; undefined while open. */
  readonly readEnd: Record<Direction, 'end' | 'reset' | undefined> = { forward: undefined, reverse: undefined };
  /** The end-of-stream marker of a direction has been delivered (dst.end() called). */
  readonly endDelivered: Record<Direction, boolean> = { forward: false, reverse: false };
  readonly paused: Record<Direction, Set<PauseReason>> = { forward: new Set(), reverse: new Set() };
  readonly closed: Record<Direction, boolean> = { forward: false, reverse: false };

  constructor(id: number, client: net.Socket, upstream: net.Socket) {
    this.id = id;
    this.client = client;
    this.upstream = upstream;
  }

  /** The socket bytes of `dir` are read from. */
  src(dir: Direction): net.Socket {
    return dir === 'forward' ? this.client : this.upstream;
  }
  /** The socket bytes of `dir` are written to. */
  dst(dir: Direction): net.Socket {
    return dir === 'forward' ? this.upstream : this.client;
  }
}

const other = (d: Direction): Direction => (d === 'forward' ? 'reverse' : 'forward');

/**
 * Destroys a socket abruptly: a TCP reset where possible, so the peer sees ECONNRESET at once.
 * Not while an end() is under way (the proxy end()s a socket when a FIN crosses the link, and
 * a reset for the same connection can follow in the same delivery): libuv refuses a reset
 * while a shutdown is pending (EINVAL) and Node 20 marks the handle closing anyway, so it never
 * closes and the process spins at exit waiting for it. That kept the fault suite's test
 * processes at ~95 % CPU after their tests passed. The FIN is on its way; a plain close follows.
 */
export function abort(s: net.Socket): void {
  if (s.destroyed) return;
  if (!s.connecting && !(s.writableEnded && !s.writableFinished)) {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      /* a unix socket has no reset: a plain close is as abrupt as it gets */
    }
  }
  s.destroy();
}

export class WanProxy {
  readonly link: WanLink<Chunk>;
  private readonly opts: WanProxyOptions;
  private readonly clock: Clock;
  private server: net.Server | null = null;
  private bound: Address | null = null;
  private readonly conns = new Set<Conn>();
  private readonly blocked: Record<Direction, Set<Conn>> = { forward: new Set(), reverse: new Set() };
  private nextId = 1;
  private counts = { total: 0, cut: 0, upstreamFailed: 0 };
  private refuseUntil = -Infinity;
  private refuseTimer: TimerHandle | null = null;
  private closing = false;
  /** Further listeners (addRoute) whose connections share this link. */
  private readonly routes = new Set<net.Server>();

  constructor(opts: WanProxyOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.link = new WanLink<Chunk>({
      clock: this.clock,
      bandwidthBps: opts.bandwidthBps,
      rttMs: opts.rttMs,
      ...(opts.queueBytes !== undefined ? { queueBytes: opts.queueBytes } : {}),
      toleranceMs: opts.toleranceMs ?? (this.clock === realClock ? 0.5 : 0),
      deliver: (dir, segs) => this.deliver(dir, segs),
      onDrain: (dir) => this.drained(dir),
    });
  }

  /** The address it listens on (with the real port when 0 was asked); null before listen(). */
  get address(): Address | null {
    return this.bound;
  }

  /** Starts accepting; resolves with the bound address. */
  async listen(): Promise<Address> {
    if (this.server) throw new FlimcdError('WanProxy is already listening', ErrorCode.STATE);
    this.bound = await this.openListener(this.opts.listen);
    return this.bound;
  }

  /**
   * Another entrance to the same link: connections accepted at `listen` go
   * to `to`, their bytes on this link with every other connection's (several
   * agent pairs, e.g. a VM's disks, behind one WAN). cut()'s refusal period
   * does not close these listeners.
   */
  async addRoute(listen: Address, to: Address): Promise<Address> {
    if (this.closing) throw new FlimcdError('WanProxy is closed', ErrorCode.STATE);
    if (listen.kind === 'unix') await removeStaleSocket(listen.path, '--listen');
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.accept(s, to));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (listen.kind === 'unix') server.listen(listen.path, resolve);
      else server.listen(listen.port, listen.host, resolve);
    });
    this.routes.add(server);
    if (listen.kind === 'unix') return listen;
    return { kind: 'tcp', host: listen.host, port: (server.address() as net.AddressInfo).port };
  }

  /**
   * Destroys every current connection abruptly (both sides get a reset;
   * bytes on the link are lost). With `refuseMs`, new connections are
   * refused (the listener is closed: ECONNREFUSED, or ENOENT for a unix
   * socket) for that long, then accepted again.
   */
  cut(opts: { refuseMs?: number } = {}): { connections: number } {
    const refuseMs = opts.refuseMs ?? 0;
    if (!(refuseMs >= 0 && Number.isFinite(refuseMs))) throw new RangeError(`refuseMs must be a finite number >= 0, got ${refuseMs}`);
    const n = this.conns.size;
    for (const c of this.conns) {
      c.dead = true;
      abort(c.client);
      abort(c.upstream);
    }
    this.counts.cut += n;
    this.link.drop((ch) => ch.conn.dead);
    for (const d of DIRECTIONS) this.blocked[d].clear();
    if (refuseMs > 0 && !this.closing) this.refuse(refuseMs);
    this.opts.onEvent?.('cut', { connections: n, refuseMs });
    return { connections: n };
  }

  /** Stops forwarding both ways for `ms` without closing anything; bytes wait. */
  stall(ms: number): void {
    this.link.stall(ms);
    this.opts.onEvent?.('stall', { ms });
  }

  /** Changes bandwidth and/or rtt live. */
  setLink(change: Partial<LinkSettings>): LinkSettings {
    const s = this.link.setLink(change);
    this.opts.onEvent?.('set', { ...s });
    return s;
  }

  stats(): WanStats {
    const buffered: Record<Direction, number> = { forward: 0, reverse: 0 };
    for (const c of this.conns) {
      for (const d of DIRECTIONS) buffered[d] += c.dst(d).writableLength;
    }
    return {
      ...this.link.stats(),
      buffered,
      connections: { active: this.conns.size, ...this.counts },
      refusingForMs: Math.max(0, this.refuseUntil - this.clock.now()),
    };
  }

  /** Stops accepting and closes every connection (without waiting for held bytes). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.refuseTimer?.cancel();
    this.refuseTimer = null;
    for (const c of this.conns) {
      c.dead = true;
      c.client.destroy();
      c.upstream.destroy();
    }
    this.link.close();
    for (const r of this.routes) r.close();
    this.routes.clear();
    await this.closeListener();
  }

  // --- listener -------------------------------------------------------------

  private async openListener(addr: Address): Promise<Address> {
    if (addr.kind === 'unix') await removeStaleSocket(addr.path, '--listen');
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (s) => this.accept(s));
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(e.code === 'EADDRINUSE' ? new UsageError(`--listen: address already in use: ${formatAddress(addr)}`) : e);
      };
      server.once('error', onError);
      const done = () => {
        server.off('error', onError);
        // close() ran while this (re)listen was under way: do not leave a listener behind it.
        if (this.closing) {
          server.close();
          return resolve(addr);
        }
        server.on('error', (e) => this.opts.onEvent?.('listener-error', { error: e.message }));
        this.server = server;
        if (addr.kind === 'unix') return resolve(addr);
        const a = server.address() as net.AddressInfo;
        resolve({ kind: 'tcp', host: addr.host, port: a.port });
      };
      if (addr.kind === 'unix') {
        server.listen(addr.path, done);
      } else {
        server.listen(addr.port, addr.host, done);
      }
    });
  }

  private closeListener(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    // close() stops accepting at once; its callback waits for accepted sockets, which we track ourselves.
    return new Promise((resolve) => {
      server.close(() => resolve());
      // Don't wait for connections the server still counts: resolve once the handle is gone.
      setImmediate(resolve);
    });
  }

  private refuse(ms: number): void {
    const until = this.clock.now() + ms;
    if (until <= this.refuseUntil) return;
    this.refuseUntil = until;
    void this.closeListener();
    this.refuseTimer?.cancel();
    this.refuseTimer = this.clock.setTimer(ms, () => this.relisten());
  }

  /** Opens the listener again after a refusal period; retries every 100 ms if the address is not free yet. */
  private relisten(): void {
    this.refuseTimer = null;
    if (this.closing || !this.bound || this.server) return;
    this.openListener(this.bound).then(
      () => this.opts.onEvent?.('accepting', { address: formatAddress(this.bound!) }),
      (e: Error) => {
        this.opts.onEvent?.('relisten-failed', { error: e.message });
        if (!this.closing) this.refuseTimer = this.clock.setTimer(100, () => this.relisten());
      },
    );
  }

  // --- connections ----------------------------------------------------------

  private accept(client: net.Socket, to: Address = this.opts.to): void {
    if (this.closing || this.clock.now() < this.refuseUntil) {
      abort(client);
      return;
    }
    const upstream = to.kind === 'unix' ? net.connect({ path: to.path, allowHalfOpen: true }) : net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
    if (client.setNoDelay) client.setNoDelay(true);
    if (to.kind === 'tcp') upstream.setNoDelay(true);
    const conn = new Conn(this.nextId++, client, upstream);
    this.conns.add(conn);
    this.counts.total++;
    let connected = false;
    upstream.once('connect', () => (connected = true));
    upstream.once('error', (e: NodeJS.ErrnoException) => {
      if (connected) return;
      this.counts.upstreamFailed++;
      this.opts.onEvent?.('upstream-failed', { conn: conn.id, to: formatAddress(to), error: e.message });
    });
    for (const d of DIRECTIONS) this.wire(conn, d);
  }

  private wire(conn: Conn, dir: Direction): void {
    const src = conn.src(dir);
    src.on('data', (buf: Buffer) => {
      if (conn.dead) return;
      if (!this.link.send(dir, { conn, dir, kind: 'data', buf }, buf.length)) {
        this.blocked[dir].add(conn);
        this.pause(conn, dir, 'link');
      }
    });
    src.on('end', () => {
      if (conn.dead || conn.readEnd[dir]) return;
      conn.readEnd[dir] = 'end';
      this.link.send(dir, { conn, dir, kind: 'end' }, 0);
    });
    src.on('error', () => {
      /* handled on 'close' */
    });
    src.on('close', () => {
      conn.closed[dir] = true;
      if (!conn.dead) {
        const toward = other(dir);
        // Gracefully closed: its end came through, and ours was delivered to it. Anything else
        // (a reset, an error, a failed connect) resets the peer, behind the bytes already on the link.
        const graceful = conn.readEnd[dir] === 'end' && conn.endDelivered[toward];
        if (!graceful && conn.readEnd[dir] !== 'reset') {
          conn.readEnd[dir] = 'reset';
          this.link.send(dir, { conn, dir, kind: 'reset' }, 0);
        }
        // Nothing can be written to this socket any more: drop what travels toward it.
        this.link.drop((ch) => ch.conn === conn && ch.dir === toward);
      }
      if (conn.closed.forward && conn.closed.reverse) this.finish(conn);
    });
  }

  private finish(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    conn.dead = true;
    for (const d of DIRECTIONS) this.blocked[d].delete(conn);
    if (!this.closing) this.link.drop((ch) => ch.conn === conn);
  }

  private deliver(dir: Direction, segs: Array<Segment<Chunk>>): void {
    const corked = new Set<net.Socket>();
    for (const seg of segs) {
      const ch = seg.item;
      const conn = ch.conn;
      if (conn.dead) continue;
      const dst = conn.dst(dir);
      if (dst.destroyed) continue;
      if (ch.kind === 'data') {
        if (!dst.writable) continue;
        if (!corked.has(dst)) {
          dst.cork();
          corked.add(dst);
        }
        const ok = dst.write(seg.offset === 0 && seg.length === ch.buf!.length ? ch.buf! : ch.buf!.subarray(seg.offset, seg.offset + seg.length));
        if (!ok && !conn.paused[dir].has('write')) {
          this.pause(conn, dir, 'write');
          dst.once('drain', () => this.resume(conn, dir, 'write'));
        }
      } else if (ch.kind === 'end') {
        if (corked.delete(dst)) dst.uncork();
        conn.endDelivered[dir] = true;
        dst.end();
      } else {
        corked.delete(dst);
        abort(dst);
      }
    }
    for (const s of corked) s.uncork();
  }

  private drained(dir: Direction): void {
    const waiting = [...this.blocked[dir]];
    this.blocked[dir].clear();
    for (const c of waiting) this.resume(c, dir, 'link');
  }

  private pause(conn: Conn, dir: Direction, why: PauseReason): void {
    conn.paused[dir].add(why);
    conn.src(dir).pause();
  }

  private resume(conn: Conn, dir: Direction, why: PauseReason): void {
    conn.paused[dir].delete(why);
    if (conn.paused[dir].size === 0 && !conn.dead) conn.src(dir).resume();
  }
}
