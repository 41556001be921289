import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ByteReader } from '../util/byte-reader.ts';
import { toFlimcdError, FlimcdError, ProtocolError } from '../errors.ts';
import type { Disk } from '../block/disk.ts';
import { writeChunks } from '../block/writev.ts';
import { negotiate, type ExportDirectory, type Negotiated } from './server-handshake.ts';
import { decodeRequest, validateRequest, type NbdRequest, type ValidationContext } from './request.ts';
import { NbdErrno, nbdErrnoName, nbdErrnoOf } from './errno.ts';
import { Cmd, CmdFlags, REQUEST_SIZE, cmdName } from './protocol.ts';
import {
  blockStatusChunk, errorChunk, noneChunk, simpleReadReply, simpleReply, structuredReadReply,
} from './reply.ts';

export interface ConnectionLimits {
  /** Requests being served at once; further requests wait in the socket (TCP back-pressure). */
  maxInFlight: number;
  /** Bytes of request and reply payload held at once. */
  maxInFlightBytes: number;
  /** Time allowed for the whole handshake. */
  handshakeTimeoutMs: number;
  /** Most descriptors in one BLOCK_STATUS reply. */
  maxExtents: number;
}

/**
 * Most socket chunks one write payload is handed to the disk as (Linux's
 * IOV_MAX, one pwritev); a payload that arrived in more pieces is joined.
 */
const MAX_PAYLOAD_CHUNKS = 1024;

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxInFlight: 128,
  maxInFlightBytes: 96 * 1024 * 1024,
  handshakeTimeoutMs: 30_000,
  maxExtents: 1024,
};

/**
 * One client connection: handshake, then the transmission loop. Requests are
 * served concurrently (replies in completion order, as the protocol allows),
 * bounded by `limits`; replies are corked per tick so many small replies go
 * out in one writev.
 */
export class NbdConnection {
  private readonly reader: ByteReader;
  private inFlight = 0;
  private inFlightBytes = 0;
  private slotWaiter: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private corked = false;
  private negotiated: Negotiated | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly dir: ExportDirectory,
    private readonly log: Logger,
    private readonly limits: ConnectionLimits = DEFAULT_LIMITS,
  ) {
    this.reader = new ByteReader(socket);
    socket.on('error', () => {}); // reported through the reader; never crash the server
    this.done = this.run();
  }

  /** Stop taking requests, finish those in flight, flush, and close. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    this.shuttingDown = true;
    if (!this.negotiated) {
      this.socket.destroy();
      return;
    }
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    try {
      await this.idle();
      await this.negotiated.export.disk.flush().catch(() => {});
      this.socket.end();
      await this.done;
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(): Promise<void> {
    const timer = setTimeout(() => {
      this.log.warn('NBD handshake timed out; closing connection');
      this.socket.destroy();
    }, this.limits.handshakeTimeoutMs);
    try {
      this.negotiated = await negotiate(this.socket, this.reader, this.dir);
      clearTimeout(timer);
      if (!this.negotiated) {
        this.socket.end();
        return;
      }
      this.log.debug({ export: this.negotiated.export.name, structured: this.negotiated.structuredReplies }, 'NBD client entered transmission');
      await this.transmit(this.negotiated);
    } catch (e) {
      if (!this.reader.isEnded || !(e instanceof ProtocolError)) {
        // The code tells our typed refusals (FLIMCD_ERR_*) from a bug (TypeError, RangeError...).
        this.log.warn({ err: (e as Error).message, code: e instanceof FlimcdError ? e.code : (e as Error).name, ...(e instanceof FlimcdError ? {} : { stack: (e as Error).stack }) }, 'NBD connection dropped');
      }
      this.socket.destroy();
    } finally {
      clearTimeout(timer);
      await this.idle();
    }
  }

  private async transmit(n: Negotiated): Promise<void> {
    const disk = n.export.disk;
    const ctx: ValidationContext = {
      size: disk.size,
      readOnly: disk.capabilities.readOnly,
      structuredReplies: n.structuredReplies,
      metaContext: n.baseAllocationId !== undefined,
      canFua: disk.capabilities.canFua,
      canFastZero: disk.capabilities.canFastZero && !disk.capabilities.readOnly,
    };
    for (;;) {
      const head = this.reader.tryRead(REQUEST_SIZE) ?? (await this.reader.read(REQUEST_SIZE));
      const req = decodeRequest(head);
      if (!req) throw new ProtocolError('bad request magic');
      if (req.type === Cmd.DISC) {
        await this.idle();
        await disk.flush().catch(() => {});
        this.socket.end();
        return;
      }
      const payloadBytes = req.type === Cmd.WRITE || req.type === Cmd.READ ? req.length : 0;
      await this.slot(payloadBytes);

      let payload: Buffer[] | undefined;
      const rejection = this.shuttingDown
        ? { errno: NbdErrno.ESHUTDOWN, message: 'server is shutting down' }
        : validateRequest(req, ctx);
      if (req.type === Cmd.WRITE) {
        // The payload always follows a write, valid or not; consume it to stay in sync.
        if (rejection) await this.reader.skip(req.length);
        // As the socket's chunks, not joined: the disk writes them with one pwritev.
        else payload = this.reader.tryReadChunks(req.length, MAX_PAYLOAD_CHUNKS) ?? (await this.reader.readChunks(req.length, MAX_PAYLOAD_CHUNKS));
      }
      this.inFlight++;
      this.inFlightBytes += payloadBytes;
      const finish = () => {
        this.inFlight--;
        this.inFlightBytes -= payloadBytes;
        this.release();
      };
      if (rejection) {
        this.log.debug({ cmd: cmdName(req.type), offset: req.offset, length: req.length, errno: nbdErrnoName(rejection.errno) }, rejection.message);
        this.sendError(req, rejection.errno, rejection.message, n.structuredReplies);
        finish();
        continue;
      }
      this.serve(disk, req, payload, n).then(finish, (e) => {
        finish();
        this.log.error({ err: (e as Error).message }, 'unexpected failure serving NBD request');
        this.socket.destroy();
      });
    }
  }

  private async serve(disk: Disk, req: NbdRequest, payload: Buffer[] | undefined, n: Negotiated): Promise<void> {
    const fua = (req.flags & CmdFlags.FUA) !== 0;
    try {
      switch (req.type) {
        case Cmd.READ: {
          if (n.structuredReplies) {
            const { reply, data } = structuredReadReply(req.cookie, req.offset, req.length);
            if (req.length > 0) await disk.read(req.offset, data);
            // A zero-length read still needs one final chunk: OFFSET_DATA must carry data, so use NONE.
            this.send(req.length > 0 ? reply : noneChunk(req.cookie));
          } else {
            const { reply, data } = simpleReadReply(req.cookie, req.length);
            await disk.read(req.offset, data);
            this.send(reply);
          }
          return;
        }
        case Cmd.WRITE:
          if (req.length > 0) await writeChunks(disk, req.offset, payload!, { fua });
          else if (fua) await disk.flush();
          break;
        case Cmd.FLUSH:
          await disk.flush();
          break;
        case Cmd.TRIM:
          if (req.length > 0) await disk.trim(req.offset, req.length, { fua });
          break;
        case Cmd.WRITE_ZEROES:
          if (req.length > 0) {
            await disk.writeZeroes(req.offset, req.length, {
              fua,
              noHole: (req.flags & CmdFlags.NO_HOLE) !== 0,
              fastZero: (req.flags & CmdFlags.FAST_ZERO) !== 0,
            });
          }
          break;
        case Cmd.CACHE:
          if (req.length > 0) await disk.cache(req.offset, req.length);
          break;
        case Cmd.BLOCK_STATUS: {
          const max = (req.flags & CmdFlags.REQ_ONE) !== 0 ? 1 : this.limits.maxExtents;
          const extents = await disk.extents(req.offset, req.length, max);
          const descriptors = toDescriptors(extents, req.offset, req.length, max);
          this.send(blockStatusChunk(req.cookie, n.baseAllocationId!, descriptors));
          return;
        }
      }
      this.send(simpleReply(req.cookie, 0));
    } catch (err) {
      const e = toFlimcdError(err);
      this.log.debug({ cmd: cmdName(req.type), offset: req.offset, length: req.length, code: e.code }, e.message);
      this.sendError(req, nbdErrnoOf(e), e.message, n.structuredReplies);
    }
  }

  private sendError(req: NbdRequest, errno: number, message: string, structured: boolean): void {
    // Without structured replies a failed read is a header with the error and no payload.
    this.send(structured ? errorChunk(req.cookie, errno, message) : simpleReply(req.cookie, errno));
  }

  private send(b: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(b);
  }

  /** Waits until another request fits within the limits and the socket has drained. */
  private async slot(bytes: number): Promise<void> {
    for (;;) {
      const fits = this.inFlight < this.limits.maxInFlight &&
        (this.inFlightBytes === 0 || this.inFlightBytes + bytes <= this.limits.maxInFlightBytes);
      if (fits && !this.socket.writableNeedDrain) return;
      if (fits) {
        await new Promise<void>((resolve) => {
          const done = () => { this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
          this.socket.once('drain', done);
          this.socket.once('close', done);
        });
        if (this.socket.destroyed) throw new ProtocolError('connection closed');
      } else {
        await new Promise<void>((resolve) => (this.slotWaiter = resolve));
      }
    }
  }

  private release(): void {
    const w = this.slotWaiter;
    this.slotWaiter = undefined;
    w?.();
    if (this.inFlight === 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of ws) f();
    }
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** Clips extents to the request, merges equal neighbours, splits at 32-bit lengths and caps the count. */
export function toDescriptors(
  extents: Array<{ offset: number; length: number; flags: number }>,
  offset: number,
  length: number,
  max: number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const end = offset + length;
  let pos = offset;
  for (const e of extents) {
    if (out.length >= max) break;
    const s = Math.max(e.offset, pos);
    const t = Math.min(e.offset + e.length, end);
    if (t <= s || s !== pos) {
      if (s > pos) break; // a gap: stop rather than describe the wrong range
      continue;
    }
    let left = t - s;
    while (left > 0 && out.length <= max) {
      const last = out[out.length - 1];
      const room = last && last[1] === e.flags ? 0xffffffff - last[0] : 0;
      if (room > 0) {
        const k = Math.min(room, left);
        last![0] += k;
        left -= k;
        continue;
      }
      if (out.length >= max) break;
      const k = Math.min(left, 0xfffff000); // stay block-aligned when splitting
      out.push([k, e.flags]);
      left -= k;
    }
    pos = t - left;
    if (left > 0) break;
  }
  if (out.length === 0) out.push([Math.min(length, 0xfffff000), 0]); // nothing known: report data
  return out;
}
