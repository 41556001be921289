/**
 * A QMP (QEMU Machine Protocol) client: JSON objects over a unix or TCP socket.
 *
 * - Replies are correlated by `id` (every command gets a fresh one), so several
 *   commands may be in flight and events interleave freely.
 * - Events are delivered to listeners (`on`) and can be awaited (`waitEvent`).
 *   A short backlog of recent events lets a waiter catch an event that arrived
 *   just before it started waiting (`since`).
 * - Every command and every event wait has a timeout (QmpError
 *   FLIMCD_ERR_QMP_TIMEOUT); nothing waits forever.
 * - `quit` resolves when QEMU closes the socket (or answers): the close that
 *   follows `quit` is the normal end, not an error. Any other close rejects
 *   the commands in flight with FLIMCD_ERR_QMP_CLOSED.
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { ErrorCode, QmpError, systemErrorCode } from '../errors.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** Host wall-clock time of the event, milliseconds since the epoch (from QEMU's timestamp). */
  timeMs: number;
  /** Local receive order, for `waitEvent({ since })`. */
  seq: number;
}

export interface QmpConnectOptions {
  /** Keep retrying a missing/refused socket this long (QEMU may still be starting). Default 10 s. */
  connectTimeoutMs?: number;
  /** Default per-command timeout. Default 30 s. */
  commandTimeoutMs?: number;
  /** Label used in error messages (e.g. "source QEMU"). */
  name?: string;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const MAX_LINE = 16 * 1024 * 1024;
const BACKLOG = 256;

export class QmpClient {
  private readonly pending = new Map<string, Pending>();
  private readonly emitter = new EventEmitter();
  private readonly backlog: QmpEvent[] = [];
  private buf = '';
  private nextId = 1;
  private eventSeq = 0;
  private closed: Error | undefined;
  private quitting = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  /** The greeting's QEMU version, e.g. { major: 7, minor: 2, micro: 0 }. */
  version: { major: number; minor: number; micro: number } | undefined;

  private constructor(private readonly socket: net.Socket, readonly name: string, private readonly commandTimeoutMs: number) {
    this.emitter.setMaxListeners(100);
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(addr: Address, o: QmpConnectOptions = {}): Promise<QmpClient> {
    const name = o.name ?? `QMP ${formatAddress(addr)}`;
    const deadline = Date.now() + (o.connectTimeoutMs ?? 10_000);
    let socket: net.Socket;
    // A unix or loopback connect attempt costs next to nothing; a long back-off would only add to a
    // QEMU's start-up (a target QEMU's start counts toward a migration's time to switch).
    for (let delay = 20; ; delay = Math.min(delay * 2, 100)) {
      try {
        socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = addr.kind === 'unix' ? net.connect(addr.path) : net.connect(addr.port, addr.host);
          s.once('connect', () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        break;
      } catch (e) {
        const code = systemErrorCode(e);
        const left = deadline - Date.now();
        if ((code === 'ENOENT' || code === 'ECONNREFUSED') && left > 0) {
          await new Promise((r) => setTimeout(r, Math.min(delay, left)));
          continue;
        }
        throw new QmpError(`${name}: cannot connect to ${formatAddress(addr)} (${code ?? (e as Error).message})`, ErrorCode.QMP_CONNECT, undefined, { cause: e });
      }
    }
    const c = new QmpClient(socket, name, o.commandTimeoutMs ?? 30_000);
    c.attach();
    const greeting = await c.nextGreeting(Math.max(1000, deadline - Date.now()));
    const v = (greeting as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }).QMP?.version?.qemu;
    c.version = v;
    await c.execute('qmp_capabilities');
    return c;
  }

  private greetingWaiter: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined;

  private nextGreeting(timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.greetingWaiter = undefined;
        this.socket.destroy();
        reject(new QmpError(`${this.name}: no QMP greeting within ${timeoutMs} ms`, ErrorCode.QMP_TIMEOUT));
      }, timeoutMs);
      this.greetingWaiter = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private attach(): void {
    const s = this.socket;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > MAX_LINE) {
        this.fail(new QmpError(`${this.name}: QMP message over ${MAX_LINE} bytes`, ErrorCode.QMP_PROTOCOL));
        s.destroy();
        return;
      }
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onLine(line);
      }
    });
    s.on('error', (e) => this.fail(new QmpError(`${this.name}: socket error: ${e.message}`, ErrorCode.QMP_CLOSED, undefined, { cause: e })));
    s.on('close', () => {
      this.fail(new QmpError(`${this.name}: QMP connection closed${this.quitting ? ' after quit' : ' unexpectedly (did QEMU exit?)'}`, ErrorCode.QMP_CLOSED));
      this.resolveClosed();
    });
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new QmpError(`${this.name}: not QMP (bad JSON: ${line.slice(0, 120)})`, ErrorCode.QMP_PROTOCOL));
      this.socket.destroy();
      return;
    }
    if ('QMP' in msg) {
      const g = this.greetingWaiter;
      this.greetingWaiter = undefined;
      g?.resolve(msg);
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp as { seconds?: number; microseconds?: number } | undefined;
      const ev: QmpEvent = {
        event: msg.event,
        data: msg.data as Record<string, unknown> | undefined,
        timeMs: ts && typeof ts.seconds === 'number' ? ts.seconds * 1000 + (ts.microseconds ?? 0) / 1000 : Date.now(),
        seq: ++this.eventSeq,
      };
      this.backlog.push(ev);
      if (this.backlog.length > BACKLOG) this.backlog.shift();
      this.emitter.emit('event', ev);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : typeof msg.id === 'number' ? String(msg.id) : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return; // a reply to nobody (timed out already): ignore
    this.pending.delete(id!);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(`${this.name}: ${p.command} failed: ${err.desc ?? 'unknown error'}${err.class ? ` (${err.class})` : ''}`, ErrorCode.QMP, err.class));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(e: QmpError): void {
    if (this.closed) return;
    this.closed = e;
    this.greetingWaiter?.reject(e);
    this.greetingWaiter = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      // The close after `quit` is how QEMU answers it.
      if (this.quitting && p.command === 'quit') p.resolve({});
      else p.reject(e);
      this.pending.delete(id);
    }
    this.emitter.emit('closed', e);
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** Resolves when the socket has closed (for any reason). */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  /** Runs one command; resolves with its `return` value, rejects with QmpError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, o: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) {
      if (command === 'quit' && this.quitting) return Promise.resolve({} as T);
      return Promise.reject(new QmpError(`${this.name}: cannot run ${command}: ${this.closed.message}`, ErrorCode.QMP_CLOSED));
    }
    const id = `flimcd-${this.nextId++}`;
    const timeoutMs = o.timeoutMs ?? this.commandTimeoutMs;
    if (command === 'quit') this.quitting = true;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`${this.name}: ${command} got no answer within ${timeoutMs} ms`, ErrorCode.QMP_TIMEOUT));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** Asks QEMU to exit; resolves once it answered or closed the socket (the normal end). */
  async quit(timeoutMs = 10_000): Promise<void> {
    await this.execute('quit', undefined, { timeoutMs });
    await Promise.race([this.closedPromise, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  on(listener: (e: QmpEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /** Sequence number of the last event received (pass as `since` to catch events from now on). */
  get lastEventSeq(): number {
    return this.eventSeq;
  }

  /**
   * Waits for an event named `name` whose data satisfies `match`. Events
   * received after `since` (a `lastEventSeq` value) that are still in the
   * backlog count too. Rejects on timeout or when the connection closes.
   */
  waitEvent(name: string, o: { timeoutMs: number; since?: number; match?: (data: Record<string, unknown>) => boolean }): Promise<QmpEvent> {
    const ok = (e: QmpEvent) => e.event === name && (!o.match || o.match(e.data ?? {}));
    if (o.since !== undefined) {
      const hit = this.backlog.find((e) => e.seq > o.since! && ok(e));
      if (hit) return Promise.resolve(hit);
    }
    if (this.closed) return Promise.reject(new QmpError(`${this.name}: waiting for ${name}: ${this.closed.message}`, ErrorCode.QMP_CLOSED));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off('event', onEvent);
        this.emitter.off('closed', onClosed);
      };
      const onEvent = (e: QmpEvent) => {
        if (!ok(e)) return;
        done();
        resolve(e);
      };
      const onClosed = (e: Error) => {
        done();
        reject(new QmpError(`${this.name}: waiting for ${name}: ${e.message}`, ErrorCode.QMP_CLOSED));
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpError(`${this.name}: no ${name} event within ${o.timeoutMs} ms`, ErrorCode.QMP_TIMEOUT));
      }, o.timeoutMs);
      this.emitter.on('event', onEvent);
      this.emitter.on('closed', onClosed);
    });
  }

  /** Closes the connection (QEMU keeps running). */
  close(): void {
    this.quitting = true;
    this.socket.destroy();
  }
}
