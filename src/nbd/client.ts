/**
 * An NBD client that is a Disk: fixed-newstyle handshake (structured replies,
 * base:allocation, NBD_OPT_GO with block sizes; NBD_OPT_EXPORT_NAME fallback),
 * then pipelined requests with replies matched by cookie in any order.
 *
 * Alignment: if the server's minimum block size is above 1, unaligned reads,
 * cache hints and block status queries are widened to the alignment; trims
 * are shrunk to the aligned part inside the range; unaligned writes and write
 * zeroes throw InvalidArgumentError (read-modify-write would race with
 * concurrent writers, so it is the caller's choice, not ours).
 */
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { checkRange } from '../block/range.ts';
import { ExtentFlags, type BlockSizeHint, type Disk, type DiskCapabilities, type Extent, type WriteOptions, type ZeroOptions } from '../block/disk.ts';
import {
  FlimcdError, InvalidArgumentError, IoError, NotSupportedError, ProtocolError, ReadOnlyError, ShutdownError,
  toFlimcdError,
} from '../errors.ts';
import { formatAddress, parseAddress, type Address } from '../util/address.ts';
import { ByteReader } from '../util/byte-reader.ts';
import {
  Coverage, encodeGoData, encodeMetaContextData, encodeOption, encodeRequest, errorFromErrno, parseBlockStatus,
  parseErrorChunk, parseInfoReply, parseMetaContextReply, parseOptionReplyHeader, parseServerReply, optionError,
  readU64, ReplyDecoder, type ReplyHandler,
} from './client-codec.ts';
import { NbdErrno, nbdErrnoOf } from './errno.ts';
import {
  BASE_ALLOCATION, ClientFlags, Cmd, CmdFlags, HandshakeFlags, IHAVEOPT, Info, MAX_OPTION_LENGTH, MAX_PAYLOAD, NBDMAGIC,
  Opt, REQUEST_SIZE, ReplyFlags, ReplyType, Rep, TxFlags, cmdName, isRepError, isReplyError,
} from './protocol.ts';

export interface NbdClientOptions {
  /** Export to open; '' (the default) is the server's default export. */
  exportName?: string;
  /** Negotiate structured replies (default true). */
  structuredReplies?: boolean;
  /** Negotiate the base:allocation meta context for extents() (default true; needs structured replies). */
  metaContexts?: boolean;
  /**
   * The one meta context extents() reports (default base:allocation). With
   * `qemu:allocation-depth` (qemu-storage-daemon, qemu-nbd -A) an extent's
   * `flags` is its depth in the backing chain: 0 unallocated, 1 the top layer.
   */
  metaContext?: string;
  /** Most requests on the wire at once (default 64). */
  maxInFlight?: number;
  /** Most read+write payload bytes on the wire at once (default 64 MiB). */
  maxInFlightBytes?: number;
  /** Limit for connecting plus the handshake (default 30 s). */
  connectTimeoutMs?: number;
}

export interface ExportListing {
  name: string;
  description: string;
}

const OLDSTYLE_MAGIC = 0x00420281861253n;
const U32_MAX = 0xffffffff;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How long close() waits for the server to hang up after NBD_CMD_DISC before dropping the socket. */
const DISCONNECT_GRACE_MS = 5_000;
/** Size of the buffer socket reads go into. */
const READ_BUFFER = 1024 * 1024;
/** Payloads up to this size are copied behind the header and sent in one write. */
const SMALL_WRITE = 16 * 1024;

/** One request on the wire. Fields are plain so V8 keeps one shape. */
class Pending {
  cmd = 0;
  offset = 0;
  length = 0;
  cost = 0;
  buf: Uint8Array | undefined = undefined;
  error: FlimcdError | undefined = undefined;
  extents: Extent[] | undefined = undefined;
  /** Read requests only: which bytes the content chunks have covered. */
  coverage: Coverage | undefined = undefined;
  resolve: (v: unknown) => void = noop;
  reject: (e: FlimcdError) => void = noop;
}

function noop(): void {}

interface Waiter {
  cost: number;
  resolve: () => void;
  reject: (e: FlimcdError) => void;
}

/** Where socket reads go: the handshake's ByteReader first, then the reply decoder. */
interface ReadRoute {
  sink: (chunk: Buffer) => void;
}

interface Negotiated {
  size: number;
  txFlags: number;
  exportName: string;
  description: string;
  structured: boolean;
  contextId: number | undefined;
  blockSize: { minimum: number; preferred: number; maximum: number } | undefined;
}

export class NbdClient extends EventEmitter implements Disk {
  readonly size: number;
  readonly capabilities: DiskCapabilities;
  /** Block sizes the server asked for; maximum is capped at 32 MiB, the most one request carries. */
  readonly blockSize: BlockSizeHint;
  /** Export name as the server reports it (NBD_INFO_NAME), else the name asked for. */
  readonly exportName: string;
  readonly description: string;
  readonly address: Address;
  /** Transmission flags as received. */
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /**
   * Settles when the connection is gone: with undefined after close(), or
   * with the error that ended it. Never rejects.
   */
  readonly closed: Promise<FlimcdError | undefined>;

  private readonly socket: Socket;
  private readonly decoder: ReplyDecoder;
  private readonly contextId: number | undefined;
  /** Status bits extents() keeps: base:allocation's two, or all of another context's value. */
  private readonly statusMask: number;
  private readonly align: number;
  private readonly payloadMax: number;
  private readonly commandMax: number;
  private readonly u32Max: number;
  private readonly maxInFlight: number;
  private readonly maxInFlightBytes: number;

  private readonly pending = new Map<number, Pending>();
  private readonly queue: Waiter[] = [];
  private nextCookie = 0;
  /** Admitted requests: on the wire, or admitted from the queue and about to be sent. */
  private active = 0;
  private bytesInFlight = 0;
  private needDrain = false;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private failure: FlimcdError | undefined;
  private socketClosed = false;
  private idleWaiters: (() => void)[] = [];
  private resolveClosed: (e: FlimcdError | undefined) => void = noop;

  private constructor(socket: Socket, route: ReadRoute, address: Address, n: Negotiated, opts: NbdClientOptions) {
    super();
    this.socket = socket;
    this.address = address;
    this.size = n.size;
    this.transmissionFlags = n.txFlags;
    this.exportName = n.exportName;
    this.description = n.description;
    this.structuredReplies = n.structured;
    this.contextId = n.contextId;
    this.statusMask = (opts.metaContext ?? BASE_ALLOCATION) === BASE_ALLOCATION ? ExtentFlags.HOLE | ExtentFlags.ZERO : 0xffffffff;
    const f = n.txFlags;
    const has = (bit: number) => (f & bit) !== 0;
    this.capabilities = {
      readOnly: has(TxFlags.READ_ONLY),
      canFlush: has(TxFlags.SEND_FLUSH),
      canFua: has(TxFlags.SEND_FUA),
      canTrim: has(TxFlags.SEND_TRIM),
      canZero: has(TxFlags.SEND_WRITE_ZEROES),
      canFastZero: has(TxFlags.SEND_WRITE_ZEROES) && has(TxFlags.SEND_FAST_ZERO),
      canCache: has(TxFlags.SEND_CACHE),
      canExtents: n.contextId !== undefined,
      canMultiConn: has(TxFlags.CAN_MULTI_CONN),
      rotational: has(TxFlags.ROTATIONAL),
    };
    const bs = n.blockSize;
    this.align = bs?.minimum ?? 1;
    const down = (v: number) => Math.floor(v / this.align) * this.align;
    const advertisedMax = bs?.maximum ?? U32_MAX;
    this.payloadMax = down(Math.min(advertisedMax, MAX_PAYLOAD));
    this.commandMax = down(Math.min(advertisedMax, U32_MAX));
    this.u32Max = down(U32_MAX);
    this.blockSize = {
      minimum: this.align,
      preferred: bs?.preferred ?? 4096,
      maximum: this.payloadMax,
    };
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 64);
    this.maxInFlightBytes = Math.max(1, opts.maxInFlightBytes ?? 64 * 1024 * 1024);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));

    this.decoder = new ReplyDecoder(this.makeHandler());
    route.sink = (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (e) {
        this.fail(e instanceof FlimcdError ? e : new ProtocolError(`reply handling failed: ${(e as Error).message}`, { cause: e }));
      }
    };
    socket.on('drain', () => {
      this.needDrain = false;
      this.pump();
    });
    socket.on('end', () => {
      if (!(this.closing && this.pending.size === 0)) this.fail(new IoError(`NBD server ${formatAddress(address)} closed the connection`));
    });
    socket.on('error', (e: Error) => this.fail(new IoError(`NBD connection to ${formatAddress(address)} failed: ${e.message}`, { cause: e })));
    socket.on('close', () => this.onSocketClose());
    socket.resume();
  }

  /** Connects and negotiates; the client is ready for I/O when this resolves. */
  static async connect(address: Address | string, opts: NbdClientOptions = {}): Promise<NbdClient> {
    const addr = typeof address === 'string' ? parseAddress(address) : address;
    const socket = await openSocket(addr, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, async (sock, reader) => {
      const n = await negotiate(sock, reader, addr, opts);
      if (reader.available !== 0) throw new ProtocolError('server sent data before the first request');
      return n;
    });
    return new NbdClient(socket.socket, socket.route, addr, socket.result, opts);
  }

  /** Lists the server's exports (NBD_OPT_LIST), then ends the session with NBD_OPT_ABORT. */
  static async list(address: Address | string, opts: { connectTimeoutMs?: number } = {}): Promise<ExportListing[]> {
    const addr = typeof address === 'string' ? parseAddress(address) : address;
    const { socket, result } = await openSocket(addr, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, async (sock, reader) => {
      await greet(sock, reader, addr);
      sock.write(encodeOption(Opt.LIST));
      const out: ExportListing[] = [];
      for (;;) {
        const r = await readOptionReply(reader, Opt.LIST);
        if (r.type === Rep.SERVER) out.push(parseServerReply(r.payload));
        else if (r.type === Rep.ACK) break;
        else if (isRepError(r.type)) throw optionError(r.type, `listing exports on ${formatAddress(addr)}`, r.payload.toString('utf8'));
        else throw new ProtocolError(`unexpected reply type ${r.type} to NBD_OPT_LIST`);
      }
      await abortSession(sock, reader);
      return out;
    });
    socket.destroy();
    return result;
  }

  /** Requests on the wire now. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Requests waiting for a slot (in-flight or byte limit, or socket back-pressure). */
  get queued(): number {
    return this.queue.length;
  }

  get isClosed(): boolean {
    return this.socketClosed;
  }

  override on(event: 'close', listener: (err: FlimcdError | undefined) => void): this;
  // The implementation signature of typed overloads: EventEmitter's own listener type.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  // ------------------------------------------------------------------ Disk

  read(offset: number, into: Uint8Array): Promise<void> {
    try {
      checkRange(this.size, offset, into.length, false);
    } catch (e) {
      return Promise.reject(e);
    }
    if (into.length === 0) return this.liveCheck();
    const a = this.align;
    if (a > 1 && (offset % a !== 0 || into.length % a !== 0)) return this.readUnaligned(offset, into);
    return this.split(Cmd.READ, 0, offset, into.length, this.payloadMax, into);
  }

  write(offset: number, data: Uint8Array, opts: WriteOptions = {}): Promise<void> {
    const err = this.modifyCheck(offset, data.length, 'write');
    if (err) return Promise.reject(err);
    if (data.length === 0) return this.liveCheck();
    return this.withFua(opts.fua, (flags) => this.split(Cmd.WRITE, flags, offset, data.length, this.payloadMax, data));
  }

  flush(): Promise<void> {
    return this.flushAfter(false);
  }

  trim(offset: number, length: number, opts: WriteOptions = {}): Promise<void> {
    if (this.capabilities.readOnly) return Promise.reject(new ReadOnlyError(`NBD export "${this.exportName}" is read-only`));
    try {
      checkRange(this.size, offset, length, true);
    } catch (e) {
      return Promise.reject(e);
    }
    // Trim is advisory: only the aligned part inside the range is sent.
    const a = this.align;
    const start = Math.ceil(offset / a) * a;
    const end = Math.floor((offset + length) / a) * a;
    if (!this.capabilities.canTrim || end <= start) return opts.fua ? this.flush() : this.liveCheck();
    return this.withFua(opts.fua, (flags) => this.split(Cmd.TRIM, flags, start, end - start, this.u32Max, undefined));
  }

  writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    const err = this.modifyCheck(offset, length, 'write zeroes');
    if (err) return Promise.reject(err);
    if (opts.fastZero && !this.capabilities.canFastZero) {
      return Promise.reject(new NotSupportedError(`NBD export "${this.exportName}" does not support fast zeroing`));
    }
    if (length === 0) return this.liveCheck();
    if (!this.capabilities.canZero) return this.zeroByWriting(offset, length, opts.fua);
    let flags = 0;
    if (opts.noHole) flags |= CmdFlags.NO_HOLE;
    // The maximum block size does not bind fast-zero requests, which fail fast anyway.
    if (opts.fastZero) flags |= CmdFlags.FAST_ZERO;
    const max = opts.fastZero ? this.u32Max : this.commandMax;
    return this.withFua(opts.fua, (f) => this.split(Cmd.WRITE_ZEROES, flags | f, offset, length, max, undefined));
  }

  cache(offset: number, length: number): Promise<void> {
    try {
      checkRange(this.size, offset, length, false);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.capabilities.canCache || length === 0) return this.liveCheck();
    const [start, end] = this.widen(offset, length);
    return this.split(Cmd.CACHE, 0, start, end - start, this.commandMax, undefined);
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this.size, offset, length, false);
    await this.liveCheck();
    if (length === 0) return [];
    if (this.contextId === undefined) return [{ offset, length, flags: 0 }];
    const [start, wideEnd] = this.widen(offset, length);
    const len = Math.min(wideEnd - start, this.u32Max);
    const got = (await this.request(Cmd.BLOCK_STATUS, 0, start, len, undefined)) as Extent[];
    if (start === offset && len <= length) return got;
    // Clip a widened answer back to [offset, offset + length).
    const end = offset + length;
    const out: Extent[] = [];
    for (const e of got) {
      const s = Math.max(e.offset, offset);
      const t = Math.min(e.offset + e.length, end);
      if (t > s) out.push({ offset: s, length: t - s, flags: e.flags });
    }
    if (out.length === 0) throw new ProtocolError(`block status at ${start} did not reach offset ${offset}`);
    return out;
  }

  /**
   * Waits for outstanding requests, sends NBD_CMD_DISC and closes the socket.
   * Idempotent; never rejects. New requests fail with ShutdownError.
   */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  // ------------------------------------------------------------- internals

  private async doClose(): Promise<void> {
    this.closing = true;
    // Loop: a finished request may chain an internal follow-up (emulated FUA flush).
    while (this.pending.size > 0 || this.queue.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (!this.failure && !this.socketClosed) {
      const disc = Buffer.allocUnsafe(REQUEST_SIZE);
      encodeRequest(disc, 0, 0, Cmd.DISC, 0, 0, 0);
      this.socket.end(disc);
      const timer = setTimeout(() => this.socket.destroy(), DISCONNECT_GRACE_MS);
      timer.unref();
      await this.closed;
      clearTimeout(timer);
    } else {
      this.socket.destroy();
      await this.closed;
    }
  }

  private onSocketClose(): void {
    if (this.socketClosed) return;
    this.socketClosed = true;
    const clean = this.closing && !this.failure;
    if (!clean) this.fail(this.failure ?? new IoError(`NBD connection to ${formatAddress(this.address)} closed`));
    else this.failure = new ShutdownError(`NBD connection to ${formatAddress(this.address)} is closed`);
    this.wakeIdle();
    const err = clean ? undefined : this.failure;
    this.resolveClosed(err);
    this.emit('close', err);
  }

  /** Ends the connection for good: every pending and queued request fails with `err`. */
  private fail(err: FlimcdError): void {
    if (this.failure) return;
    this.failure = err;
    const pend = [...this.pending.values()];
    this.pending.clear();
    this.active = 0;
    this.bytesInFlight = 0;
    const waiters = this.queue.splice(0);
    this.socket.destroy();
    for (const p of pend) p.reject(err);
    for (const w of waiters) w.reject(err);
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.pending.size > 0 || this.queue.length > 0) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  /** The error new requests fail with, if any. */
  private refusal(): FlimcdError | undefined {
    if (this.failure) return this.failure;
    if (this.closing) return new ShutdownError(`NBD connection to ${formatAddress(this.address)} is closing`);
    return undefined;
  }

  private liveCheck(): Promise<void> {
    const err = this.refusal();
    return err ? Promise.reject(err) : Promise.resolve();
  }

  private modifyCheck(offset: number, length: number, what: string): FlimcdError | undefined {
    if (this.capabilities.readOnly) return new ReadOnlyError(`NBD export "${this.exportName}" is read-only`);
    try {
      checkRange(this.size, offset, length, true);
    } catch (e) {
      return e as FlimcdError;
    }
    const a = this.align;
    if (a > 1 && (offset % a !== 0 || length % a !== 0)) {
      return new InvalidArgumentError(`${what} at ${offset}+${length} is not aligned to the server's minimum block size ${a}`);
    }
    return undefined;
  }

  /** [start, end) rounded out to the minimum block size, kept inside the disk. */
  private widen(offset: number, length: number): [number, number] {
    const a = this.align;
    return [Math.floor(offset / a) * a, Math.min(Math.ceil((offset + length) / a) * a, this.size)];
  }

  private async readUnaligned(offset: number, into: Uint8Array): Promise<void> {
    const [start, end] = this.widen(offset, into.length);
    const tmp = Buffer.allocUnsafe(end - start);
    await this.split(Cmd.READ, 0, start, tmp.length, this.payloadMax, tmp);
    into.set(tmp.subarray(offset - start, offset - start + into.length));
  }

  /** A flush; `internal` lets an emulated FUA finish even once close() has begun. */
  private flushAfter(internal: boolean): Promise<void> {
    if (!this.capabilities.canFlush) return this.liveCheck();
    return this.request(Cmd.FLUSH, 0, 0, 0, undefined, internal) as Promise<void>;
  }

  /** Runs `op` with the FUA flag if the server takes it, else follows it with a flush. */
  private withFua(fua: boolean | undefined, op: (flags: number) => Promise<void>): Promise<void> {
    if (!fua) return op(0);
    if (this.capabilities.canFua) return op(CmdFlags.FUA);
    return op(0).then(() => this.flushAfter(true));
  }

  private async zeroByWriting(offset: number, length: number, fua: boolean | undefined): Promise<void> {
    const step = Math.min(this.payloadMax, 1024 * 1024);
    const zeros = new Uint8Array(Math.min(step, length));
    const parts: Promise<void>[] = [];
    for (let pos = 0; pos < length; pos += step) {
      const n = Math.min(step, length - pos);
      parts.push(this.request(Cmd.WRITE, 0, offset + pos, n, zeros.subarray(0, n)) as Promise<void>);
    }
    await Promise.all(parts);
    if (fua) await this.flushAfter(true);
  }

  /** Issues one request per `max`-sized piece; all pieces go out pipelined. */
  private split(cmd: number, flags: number, offset: number, length: number, max: number, buf: Uint8Array | undefined): Promise<void> {
    if (length <= max) return this.request(cmd, flags, offset, length, buf) as Promise<void>;
    const parts: Promise<unknown>[] = [];
    for (let pos = 0; pos < length; pos += max) {
      const n = Math.min(max, length - pos);
      parts.push(this.request(cmd, flags, offset + pos, n, buf?.subarray(pos, pos + n)));
    }
    return Promise.all(parts).then(noop);
  }

  /**
   * Sends one request once a slot is free. `buf` is the destination of a
   * READ or the payload of a WRITE. Resolves with Extent[] for BLOCK_STATUS.
   */
  private request(cmd: number, flags: number, offset: number, length: number, buf: Uint8Array | undefined, internal = false): Promise<unknown> {
    const err = internal ? this.failure : this.refusal();
    if (err) return Promise.reject(err);
    const cost = cmd === Cmd.READ || cmd === Cmd.WRITE ? Math.min(length, this.maxInFlightBytes) : 0;
    if (this.queue.length === 0 && this.canAdmit(cost)) {
      this.reserve(cost);
      return this.send(cmd, flags, offset, length, buf, cost);
    }
    // Queued: pump() reserves the slot before resolving.
    return new Promise<void>((resolve, reject) => this.queue.push({ cost, resolve, reject }))
      .then(() => this.send(cmd, flags, offset, length, buf, cost));
  }

  private canAdmit(cost: number): boolean {
    return !this.needDrain && this.active < this.maxInFlight && this.bytesInFlight + cost <= this.maxInFlightBytes;
  }

  private reserve(cost: number): void {
    this.active++;
    this.bytesInFlight += cost;
  }

  /** Admits queued requests in order while there is room. */
  private pump(): void {
    const q = this.queue;
    while (q.length > 0 && this.canAdmit(q[0]!.cost)) {
      const w = q.shift()!;
      this.reserve(w.cost);
      w.resolve();
    }
  }

  private send(cmd: number, flags: number, offset: number, length: number, buf: Uint8Array | undefined, cost: number): Promise<unknown> {
    const err = this.failure;
    if (err) return Promise.reject(err);
    const p = new Pending();
    p.cmd = cmd;
    p.offset = offset;
    p.length = length;
    p.cost = cost;
    if (cmd === Cmd.READ) {
      p.buf = buf;
      if (this.structuredReplies) p.coverage = new Coverage();
    }
    const promise = new Promise<unknown>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    let cookie = this.nextCookie;
    do cookie = (cookie + 1) >>> 0;
    while (this.pending.has(cookie));
    this.nextCookie = cookie;
    this.pending.set(cookie, p);

    const s = this.socket;
    let ok: boolean;
    if (cmd === Cmd.WRITE && buf) {
      if (buf.length <= SMALL_WRITE) {
        const out = Buffer.allocUnsafe(REQUEST_SIZE + buf.length);
        encodeRequest(out, 0, flags, cmd, cookie, offset, length);
        out.set(buf, REQUEST_SIZE);
        ok = s.write(out);
      } else {
        const hdr = Buffer.allocUnsafe(REQUEST_SIZE);
        encodeRequest(hdr, 0, flags, cmd, cookie, offset, length);
        s.cork();
        s.write(hdr);
        ok = s.write(buf);
        s.uncork();
      }
    } else {
      const hdr = Buffer.allocUnsafe(REQUEST_SIZE);
      encodeRequest(hdr, 0, flags, cmd, cookie, offset, length);
      ok = s.write(hdr);
    }
    if (!ok) this.needDrain = true;
    return promise;
  }

  private complete(cookie: number, p: Pending): void {
    this.pending.delete(cookie);
    this.active--;
    this.bytesInFlight -= p.cost;
    if (p.error) {
      p.reject(p.error);
      if (nbdErrnoOf(p.error) === NbdErrno.ESHUTDOWN) void this.close();
    } else {
      p.resolve(p.extents);
    }
    this.pump();
    if (this.closing) this.wakeIdle();
  }

  private lookup(cookie: number): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw new ProtocolError(`reply for unknown handle ${cookie}`);
    return p;
  }

  private makeHandler(): ReplyHandler {
    const structured = this.structuredReplies;
    return {
      simple: (cookie, error) => {
        const p = this.lookup(cookie);
        if (error !== 0) {
          p.error = errorFromErrno(error, '', p.cmd, p.offset, p.length);
          this.complete(cookie, p);
          return undefined;
        }
        if (p.cmd === Cmd.READ) {
          if (structured) throw new ProtocolError('simple reply with data to NBD_CMD_READ after structured replies were negotiated');
          return p.buf!;
        }
        if (p.cmd === Cmd.BLOCK_STATUS) throw new ProtocolError('simple success reply to NBD_CMD_BLOCK_STATUS');
        this.complete(cookie, p);
        return undefined;
      },
      simpleDataDone: (cookie) => {
        this.complete(cookie, this.lookup(cookie));
      },
      data: (cookie, _flags, offset, length) => {
        if (!structured) throw new ProtocolError('structured reply although structured replies were not negotiated');
        const p = this.lookup(cookie);
        if (p.cmd !== Cmd.READ) throw new ProtocolError(`data chunk in reply to ${cmdName(p.cmd)}`);
        const rel = offset - p.offset;
        if (rel < 0 || rel + length > p.length) {
          throw new ProtocolError(`data chunk ${offset}+${length} outside the request ${p.offset}+${p.length}`);
        }
        if (!p.coverage!.add(rel, rel + length)) throw new ProtocolError(`data chunk ${offset}+${length} overlaps an earlier chunk`);
        return p.buf!.subarray(rel, rel + length);
      },
      dataDone: (cookie, flags) => {
        if (flags & ReplyFlags.DONE) this.finishStructured(cookie, this.lookup(cookie));
      },
      chunk: (cookie, flags, type, payload) => {
        if (!structured) throw new ProtocolError('structured reply although structured replies were not negotiated');
        const p = this.lookup(cookie);
        this.onChunk(p, flags, type, payload);
        if (flags & ReplyFlags.DONE) this.finishStructured(cookie, p);
      },
    };
  }

  private onChunk(p: Pending, flags: number, type: number, payload: Buffer): void {
    switch (type) {
      case ReplyType.NONE:
        if (payload.length !== 0) throw new ProtocolError(`NBD_REPLY_TYPE_NONE with ${payload.length}-byte payload`);
        if (!(flags & ReplyFlags.DONE)) throw new ProtocolError('NBD_REPLY_TYPE_NONE without the DONE flag');
        return;
      case ReplyType.OFFSET_HOLE: {
        if (p.cmd !== Cmd.READ) throw new ProtocolError(`hole chunk in reply to ${cmdName(p.cmd)}`);
        if (payload.length !== 12) throw new ProtocolError(`hole chunk has length ${payload.length}, expected 12`);
        const offset = readU64(payload, 0, 'hole offset');
        const length = payload.readUInt32BE(8);
        const rel = offset - p.offset;
        if (length === 0 || rel < 0 || rel + length > p.length) {
          throw new ProtocolError(`hole chunk ${offset}+${length} outside the request ${p.offset}+${p.length}`);
        }
        if (!p.coverage!.add(rel, rel + length)) throw new ProtocolError(`hole chunk ${offset}+${length} overlaps an earlier chunk`);
        p.buf!.fill(0, rel, rel + length);
        return;
      }
      case ReplyType.BLOCK_STATUS: {
        if (p.cmd !== Cmd.BLOCK_STATUS) throw new ProtocolError(`block status chunk in reply to ${cmdName(p.cmd)}`);
        const { contextId, extents } = parseBlockStatus(payload, p.offset, p.length, this.statusMask);
        if (contextId !== this.contextId) throw new ProtocolError(`block status for unknown meta context ${contextId}`);
        if (p.extents) throw new ProtocolError('two block status chunks for one meta context');
        p.extents = extents;
        return;
      }
      default: {
        if (!isReplyError(type)) throw new ProtocolError(`unknown structured reply type ${type}`);
        const e = parseErrorChunk(type, payload);
        if (e.offset !== undefined && (e.offset < p.offset || e.offset >= p.offset + Math.max(p.length, 1))) {
          throw new ProtocolError(`error offset ${e.offset} outside the request ${p.offset}+${p.length}`);
        }
        const errno = e.errno === 0 ? NbdErrno.EINVAL : e.errno;
        const msg = e.offset !== undefined && e.offset !== p.offset ? `${e.message} (at offset ${e.offset})` : e.message;
        p.error ??= errorFromErrno(errno, msg, p.cmd, p.offset, p.length);
      }
    }
  }

  private finishStructured(cookie: number, p: Pending): void {
    if (!p.error) {
      if (p.cmd === Cmd.READ && p.coverage!.covered !== p.length) {
        throw new ProtocolError(`read ${p.offset}+${p.length} succeeded with only ${p.coverage!.covered} bytes of data`);
      }
      if (p.cmd === Cmd.BLOCK_STATUS && !p.extents) throw new ProtocolError('block status reply without a status chunk');
    }
    this.complete(cookie, p);
  }
}

// ---------------------------------------------------------------- handshake

/** Connects, runs `body` with a ByteReader under a deadline, and hands the socket over on success. */
async function openSocket<T>(
  addr: Address,
  timeoutMs: number,
  body: (socket: Socket, reader: ByteReader) => Promise<T>,
): Promise<{ socket: Socket; route: ReadRoute; result: T }> {
  const where = formatAddress(addr);
  // Reads land in one reusable buffer (no allocation per socket read). The
  // handshake copies them out and re-emits 'data' for the ByteReader; the
  // client's decoder then consumes the buffer in place, synchronously.
  const route: ReadRoute = { sink: (b) => socket.emit('data', Buffer.from(b)) };
  const onread = { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: (n: number, buf: Uint8Array) => {
    route.sink((buf as Buffer).subarray(0, n));
    return true;
  } };
  const socket = addr.kind === 'unix' ? netConnect({ path: addr.path, onread }) : netConnect({ host: addr.host, port: addr.port, onread });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, timeoutMs);
  // Catch errors until the client installs its own handler.
  let sockErr: Error | undefined;
  const onErr = (e: Error) => (sockErr ??= e);
  socket.on('error', onErr);
  const before = new Map(['data', 'end', 'close', 'error'].map((ev) => [ev, socket.listeners(ev)]));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
      socket.once('close', () => reject(sockErr ?? new Error('closed')));
    });
    if (addr.kind === 'tcp') socket.setNoDelay(true);
    const reader = new ByteReader(socket);
    const result = await body(socket, reader);
    // Detach the handshake reader so the client's decoder owns the stream.
    for (const [ev, keep] of before) {
      for (const l of socket.listeners(ev)) if (!keep.includes(l)) socket.off(ev, l as (...a: unknown[]) => void);
    }
    socket.removeAllListeners('connect');
    socket.off('error', onErr);
    return { socket, route, result };
  } catch (e) {
    if (optionRefused(e) && !socket.destroyed) {
      // The server said no politely: end with a soft disconnect, as the spec asks.
      socket.end(encodeOption(Opt.ABORT));
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
    if (timedOut) throw new IoError(`NBD handshake with ${where} timed out after ${timeoutMs} ms`);
    if (e instanceof FlimcdError) {
      if (e instanceof ProtocolError && /connection (closed|error)/.test(e.message)) {
        throw new IoError(`NBD server ${where} dropped the connection during the handshake (${e.message})`, { cause: e });
      }
      throw e;
    }
    const err = toFlimcdError(e);
    throw new IoError(`cannot connect to NBD server ${where}: ${err.message}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

/** True for errors that came from an option error reply (the session itself is still sound). */
function optionRefused(e: unknown): boolean {
  return e instanceof FlimcdError && !(e instanceof ProtocolError) && !(e instanceof IoError);
}

/** Reads the greeting, refuses anything but fixed newstyle, sends client flags. Returns the server's handshake flags. */
async function greet(socket: Socket, reader: ByteReader, addr: Address): Promise<number> {
  const hello = await reader.read(18);
  if (hello.readBigUInt64BE(0) !== NBDMAGIC) throw new ProtocolError(`${formatAddress(addr)} is not an NBD server (bad greeting magic)`);
  const second = hello.readBigUInt64BE(8);
  if (second === OLDSTYLE_MAGIC) throw new ProtocolError(`NBD server ${formatAddress(addr)} only speaks the oldstyle handshake, which flimcd does not support`);
  if (second !== IHAVEOPT) throw new ProtocolError(`bad newstyle magic 0x${second.toString(16)} from ${formatAddress(addr)}`);
  const hflags = hello.readUInt16BE(16);
  if (!(hflags & HandshakeFlags.FIXED_NEWSTYLE)) {
    throw new ProtocolError(`NBD server ${formatAddress(addr)} does not support fixed newstyle negotiation`);
  }
  const cflags = Buffer.allocUnsafe(4);
  cflags.writeUInt32BE(ClientFlags.FIXED_NEWSTYLE | (hflags & HandshakeFlags.NO_ZEROES ? ClientFlags.NO_ZEROES : 0));
  socket.write(cflags);
  return hflags;
}

async function readOptionReply(reader: ByteReader, opt: number): Promise<{ type: number; payload: Buffer }> {
  const h = parseOptionReplyHeader(await reader.read(20), opt);
  if (h.length > MAX_OPTION_LENGTH) throw new ProtocolError(`option reply of ${h.length} bytes is too long`);
  // Copy: the reader may hand out views of socket chunks.
  const payload = h.length > 0 ? Buffer.from(await reader.read(h.length)) : Buffer.alloc(0);
  return { type: h.type, payload };
}

/** Soft disconnect during option haggling; tolerates servers that just hang up. */
async function abortSession(socket: Socket, reader: ByteReader): Promise<void> {
  socket.write(encodeOption(Opt.ABORT));
  try {
    await readOptionReply(reader, Opt.ABORT);
  } catch {
    // No reply or a closed socket is fine after NBD_OPT_ABORT.
  }
}

async function negotiate(socket: Socket, reader: ByteReader, addr: Address, opts: NbdClientOptions): Promise<Negotiated> {
  const where = formatAddress(addr);
  const hflags = await greet(socket, reader, addr);
  const name = opts.exportName ?? '';
  const exportLabel = `export "${name}" on ${where}`;

  let structured = false;
  if (opts.structuredReplies ?? true) {
    socket.write(encodeOption(Opt.STRUCTURED_REPLY));
    const r = await readOptionReply(reader, Opt.STRUCTURED_REPLY);
    if (r.type === Rep.ACK) structured = true;
    else if (r.type === Rep.ERR_SHUTDOWN) throw optionError(r.type, exportLabel, r.payload.toString('utf8'));
    else if (!isRepError(r.type)) throw new ProtocolError(`unexpected reply type ${r.type} to NBD_OPT_STRUCTURED_REPLY`);
  }

  let contextId: number | undefined;
  if (structured && (opts.metaContexts ?? true)) {
    const wanted = opts.metaContext ?? BASE_ALLOCATION;
    socket.write(encodeOption(Opt.SET_META_CONTEXT, encodeMetaContextData(name, [wanted])));
    for (;;) {
      const r = await readOptionReply(reader, Opt.SET_META_CONTEXT);
      if (r.type === Rep.META_CONTEXT) {
        const m = parseMetaContextReply(r.payload);
        if (m.name === wanted) contextId = m.id;
      } else if (r.type === Rep.ACK) {
        break;
      } else if (isRepError(r.type)) {
        // Without contexts extents() reports data; an unknown export shows up in GO below.
        if (r.type === Rep.ERR_SHUTDOWN) throw optionError(r.type, exportLabel, r.payload.toString('utf8'));
        contextId = undefined;
        break;
      } else {
        throw new ProtocolError(`unexpected reply type ${r.type} to NBD_OPT_SET_META_CONTEXT`);
      }
    }
  }

  socket.write(encodeOption(Opt.GO, encodeGoData(name, [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE])));
  let size: number | undefined;
  let txFlags = 0;
  let canonical = name;
  let description = '';
  let blockSize: Negotiated['blockSize'];
  for (;;) {
    const r = await readOptionReply(reader, Opt.GO);
    if (r.type === Rep.INFO) {
      const info = parseInfoReply(r.payload);
      if (info.kind === 'export') {
        size = info.size;
        txFlags = info.flags;
      } else if (info.kind === 'name') canonical = info.name;
      else if (info.kind === 'description') description = info.description;
      else if (info.kind === 'blockSize') blockSize = info;
    } else if (r.type === Rep.ACK) {
      if (size === undefined) throw new ProtocolError('NBD_OPT_GO succeeded without NBD_INFO_EXPORT');
      break;
    } else if (r.type === Rep.ERR_UNSUP) {
      // Pre-GO server: NBD_OPT_EXPORT_NAME cannot report errors; a missing export just hangs up.
      socket.write(encodeOption(Opt.EXPORT_NAME, Buffer.from(name, 'utf8')));
      let reply: Buffer;
      try {
        reply = await reader.read(hflags & HandshakeFlags.NO_ZEROES ? 10 : 134);
      } catch (e) {
        throw new IoError(`NBD server ${where} closed the connection after NBD_OPT_EXPORT_NAME: ${exportLabel} probably does not exist`, { cause: e });
      }
      size = readU64(reply, 0, 'export size');
      txFlags = reply.readUInt16BE(8);
      blockSize = undefined;
      break;
    } else if (isRepError(r.type)) {
      throw optionError(r.type, exportLabel, r.payload.toString('utf8'));
    } else {
      throw new ProtocolError(`unexpected reply type ${r.type} to NBD_OPT_GO`);
    }
  }
  return { size, txFlags, exportName: canonical, description, structured, contextId, blockSize };
}
