/**
 * Unit tests of the NBD client: the codec byte by byte, then the client
 * against a scripted in-process server that can misbehave on purpose
 * (out-of-order and malformed replies, dropped connections, old servers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  Coverage, ReplyDecoder, errorFromErrno, parseBlockStatus, parseErrorChunk, parseInfoReply, type ReplyHandler,
} from '../../src/nbd/client-codec.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import {
  FlimcdError, InvalidArgumentError, IoError, NoSpaceError, NotSupportedError, OverflowError, ProtocolError,
  ReadOnlyError, ShutdownError,
} from '../../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import {
  Cmd, CmdFlags, IHAVEOPT, NBDMAGIC, Opt, OPTION_REPLY_MAGIC, ReplyFlags, ReplyType, Rep, SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC, TxFlags,
} from '../../src/nbd/protocol.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

// ------------------------------------------------------------ wire builders

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
}
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
function simpleReply(cookie: Buffer, error: number, data?: Buffer): Buffer {
  return Buffer.concat([u32(SIMPLE_REPLY_MAGIC), u32(error), cookie, data ?? Buffer.alloc(0)]);
}
function chunk(cookie: Buffer, flags: number, type: number, payload: Buffer): Buffer {
  return Buffer.concat([u32(STRUCTURED_REPLY_MAGIC), u16(flags), u16(type), cookie, u32(payload.length), payload]);
}
function dataChunk(cookie: Buffer, flags: number, offset: number, data: Buffer): Buffer {
  return chunk(cookie, flags, ReplyType.OFFSET_DATA, Buffer.concat([u64(offset), data]));
}
function holeChunk(cookie: Buffer, flags: number, offset: number, len: number): Buffer {
  return chunk(cookie, flags, ReplyType.OFFSET_HOLE, Buffer.concat([u64(offset), u32(len)]));
}
function errorChunk(cookie: Buffer, flags: number, errno: number, msg: string, type: number = ReplyType.ERROR): Buffer {
  const m = Buffer.from(msg);
  return chunk(cookie, flags, type, Buffer.concat([u32(errno), u16(m.length), m]));
}
function statusChunk(cookie: Buffer, flags: number, ctx: number, descs: [number, number][]): Buffer {
  return chunk(cookie, flags, ReplyType.BLOCK_STATUS, Buffer.concat([u32(ctx), ...descs.flatMap(([l, f]) => [u32(l), u32(f)])]));
}
const cookieOf = (n: number) => Buffer.concat([u32(0), u32(n)]);

// ------------------------------------------------------------------- codec

/** Records decoder callbacks; read data lands in per-cookie buffers. */
function recorder(readLen = 16) {
  const events: string[] = [];
  const bufs = new Map<number, Buffer>();
  const buf = (c: number) => {
    let b = bufs.get(c);
    if (!b) bufs.set(c, (b = Buffer.alloc(readLen, 0xee)));
    return b;
  };
  const h: ReplyHandler = {
    simple: (c, e) => {
      events.push(`simple ${c} ${e}`);
      return e === 0 && c >= 100 ? buf(c) : undefined;
    },
    simpleDataDone: (c) => events.push(`simpleDone ${c}`),
    data: (c, f, off, len) => {
      events.push(`data ${c} ${f} ${off} ${len}`);
      return buf(c).subarray(off, off + len);
    },
    dataDone: (c, f) => events.push(`dataDone ${c} ${f}`),
    chunk: (c, f, t, p) => events.push(`chunk ${c} ${f} ${t} ${p.toString('hex')}`),
  };
  return { h, events, bufs };
}

test('ReplyDecoder: every split point gives the same callbacks and data', () => {
  const data = Buffer.from('0123456789abcdef');
  const stream = Buffer.concat([
    simpleReply(cookieOf(1), 0),
    simpleReply(cookieOf(100), 0, data),
    simpleReply(cookieOf(2), 5),
    dataChunk(cookieOf(3), 0, 4, data.subarray(4, 10)),
    holeChunk(cookieOf(3), 0, 0, 4),
    dataChunk(cookieOf(3), ReplyFlags.DONE, 10, data.subarray(10)),
    chunk(cookieOf(4), ReplyFlags.DONE, ReplyType.NONE, Buffer.alloc(0)),
    statusChunk(cookieOf(5), ReplyFlags.DONE, 7, [[512, 3]]),
  ]);
  const whole = recorder();
  new ReplyDecoder(whole.h).push(stream);
  assert.deepEqual(whole.events, [
    'simple 1 0', 'simple 100 0', 'simpleDone 100', 'simple 2 5',
    'data 3 0 4 6', 'dataDone 3 0', 'chunk 3 0 2 000000000000000000000004',
    'data 3 1 10 6', 'dataDone 3 1', 'chunk 4 1 0 ', 'chunk 5 1 5 000000070000020000000003',
  ]);
  assert.deepEqual(whole.bufs.get(100), data);
  // Cookie 3: hole over [0, 4), data elsewhere; the hole itself is filled by the client, not the decoder.
  assert.deepEqual(whole.bufs.get(3)!.subarray(4), data.subarray(4));
  for (let cut = 1; cut < stream.length; cut++) {
    const r = recorder();
    const d = new ReplyDecoder(r.h);
    d.push(stream.subarray(0, cut));
    d.push(stream.subarray(cut));
    assert.deepEqual(r.events, whole.events, `split at ${cut}`);
    assert.deepEqual(r.bufs.get(100), data);
    assert.ok(d.idle);
  }
  // Byte at a time.
  const r = recorder();
  const d = new ReplyDecoder(r.h);
  for (let i = 0; i < stream.length; i++) d.push(stream.subarray(i, i + 1));
  assert.deepEqual(r.events, whole.events);
});

test('ReplyDecoder: bad magic, short data chunk, oversized payload and foreign cookies are protocol errors', () => {
  const { h } = recorder();
  assert.throws(() => new ReplyDecoder(h).push(Buffer.from('deadbeef00000000', 'hex')), ProtocolError);
  const shortData = chunk(cookieOf(1), 0, ReplyType.OFFSET_DATA, u64(0));
  assert.throws(() => new ReplyDecoder(h).push(shortData), /length 8/);
  assert.throws(() => new ReplyDecoder(h, 100).push(errorChunk(cookieOf(1), 1, 5, 'x'.repeat(200))), /exceeds/);
  const foreign = Buffer.concat([u32(SIMPLE_REPLY_MAGIC), u32(0), u32(1), u32(1)]);
  assert.throws(() => new ReplyDecoder(h).push(foreign), /unknown handle/);
});

test('parseBlockStatus clips to the request, merges equal flags and masks unknown bits', () => {
  const p = (descs: [number, number][]) => Buffer.concat([u32(9), ...descs.flatMap(([l, f]) => [u32(l), u32(f)])]);
  assert.deepEqual(parseBlockStatus(p([[4096, 0], [4096, 3], [8192, 3 | 8]]), 1000, 10000), {
    contextId: 9,
    extents: [{ offset: 1000, length: 4096, flags: 0 }, { offset: 5096, length: 5904, flags: 3 }],
  });
  assert.deepEqual(parseBlockStatus(p([[1 << 20, 2]]), 0, 512).extents, [{ offset: 0, length: 512, flags: 2 }]);
  assert.throws(() => parseBlockStatus(p([[0, 0]]), 0, 512), /zero length/);
  assert.throws(() => parseBlockStatus(Buffer.alloc(10), 0, 512), /bad length/);
  assert.throws(() => parseBlockStatus(u32(1), 0, 512), /bad length/);
});

test('parseErrorChunk checks the message length and reads ERROR_OFFSET offsets', () => {
  const m = Buffer.from('disk on fire');
  assert.deepEqual(parseErrorChunk(ReplyType.ERROR, Buffer.concat([u32(5), u16(m.length), m])), { errno: 5, message: 'disk on fire' });
  assert.deepEqual(parseErrorChunk(ReplyType.ERROR_OFFSET, Buffer.concat([u32(28), u16(m.length), m, u64(4096)])), {
    errno: 28, message: 'disk on fire', offset: 4096,
  });
  assert.throws(() => parseErrorChunk(ReplyType.ERROR, Buffer.concat([u32(5), u16(99), m])), /exceeds/);
  assert.throws(() => parseErrorChunk(ReplyType.ERROR_OFFSET, Buffer.concat([u32(5), u16(0)])), /expected 14/);
});

test('errorFromErrno maps server errnos onto FlimcdError classes with the server message', () => {
  const cases: [number, number, new (...a: never[]) => FlimcdError][] = [
    [NbdErrno.EPERM, Cmd.WRITE, ReadOnlyError],
    [NbdErrno.EINVAL, Cmd.READ, InvalidArgumentError],
    [NbdErrno.ENOSPC, Cmd.WRITE, NoSpaceError],
    [NbdErrno.EOVERFLOW, Cmd.READ, OverflowError],
    [NbdErrno.ENOTSUP, Cmd.WRITE_ZEROES, NotSupportedError],
    [NbdErrno.EIO, Cmd.READ, IoError],
    [NbdErrno.ESHUTDOWN, Cmd.FLUSH, ShutdownError],
    [77, Cmd.READ, InvalidArgumentError],
  ];
  for (const [errno, cmd, cls] of cases) {
    const e = errorFromErrno(errno, 'because', cmd, 512, 4096);
    assert.ok(e instanceof cls, `${errno} -> ${e.constructor.name}`);
    assert.match(e.message, /512\+4096.*because/);
  }
  const perm = errorFromErrno(NbdErrno.EPERM, '', Cmd.READ, 0, 1);
  assert.equal(perm.code, 'FLIMCD_ERR_PERMISSION');
  assert.equal(nbdErrnoOf(perm), NbdErrno.EPERM);
  assert.equal(nbdErrnoOf(errorFromErrno(NbdErrno.ENOSPC, '', Cmd.WRITE, 0, 1)), NbdErrno.ENOSPC);
});

test('parseInfoReply validates block sizes', () => {
  const bs = (a: number, b: number, c: number) => Buffer.concat([u16(3), u32(a), u32(b), u32(c)]);
  assert.deepEqual(parseInfoReply(bs(512, 4096, 1 << 25)), { kind: 'blockSize', minimum: 512, preferred: 4096, maximum: 1 << 25 });
  assert.throws(() => parseInfoReply(bs(3, 4096, 1 << 25)), /power of 2/);
  assert.throws(() => parseInfoReply(bs(512, 4096, 1000)), /multiple/);
  assert.deepEqual(parseInfoReply(Buffer.concat([u16(0), u64(1 << 30), u16(3)])), { kind: 'export', size: 1 << 30, flags: 3 });
  assert.throws(() => parseInfoReply(Buffer.concat([u16(0), u64(1)])), /expected 12/);
  assert.deepEqual(parseInfoReply(Buffer.concat([u16(99), u32(1)])), { kind: 'unknown', type: 99 });
});

test('Coverage detects overlaps in and out of order', () => {
  const c = new Coverage();
  assert.ok(c.add(100, 200));
  assert.ok(c.add(200, 300));
  assert.ok(c.add(0, 100));
  assert.equal(c.covered, 300);
  assert.ok(c.add(500, 600));
  assert.ok(!c.add(550, 560));
  assert.ok(!c.add(250, 350));
  assert.ok(c.add(300, 500));
  assert.equal(c.covered, 600);
  c.reset();
  assert.ok(c.add(0, 10));
  assert.ok(!c.add(5, 6));
});

// ---------------------------------------------------------- scripted server

interface Req {
  flags: number;
  type: number;
  cookie: Buffer;
  offset: number;
  length: number;
  data?: Buffer;
}

interface FakeOptions {
  handshakeFlags?: number;
  noGo?: boolean;
  structured?: boolean;
  size?: number;
  txFlags?: number;
  exports?: string[];
  blockSize?: [number, number, number];
  onRequest?: (req: Req, sock: Socket, all: Req[]) => void;
}

/** A tiny scripted NBD server: real handshake, transmission handed to onRequest. */
async function fakeServer(t: TestCtx, o: FakeOptions): Promise<{ addr: string; server: Server; sockets: Socket[]; discs: () => number }> {
  const dir = tempDir(t);
  const path = join(dir, 'fake.sock');
  const sockets: Socket[] = [];
  let discs = 0;
  const server = createServer((sock) => {
    sockets.push(sock);
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'opts' | 'tx' = 'flags';
    let noZeroes = false;
    const all: Req[] = [];
    const optReply = (opt: number, type: number, payload = Buffer.alloc(0)) =>
      sock.write(Buffer.concat([u64(Number(OPTION_REPLY_MAGIC)), u32(opt), u32(type), u32(payload.length), payload]));
    const hs = Buffer.alloc(18);
    hs.writeBigUInt64BE(NBDMAGIC, 0);
    hs.writeBigUInt64BE(IHAVEOPT, 8);
    hs.writeUInt16BE(o.handshakeFlags ?? 3, 16);
    sock.write(hs);
    const size = o.size ?? 1 << 20;
    const tx = o.txFlags ?? (TxFlags.HAS_FLAGS | TxFlags.SEND_FLUSH | TxFlags.SEND_FUA | TxFlags.SEND_TRIM | TxFlags.SEND_WRITE_ZEROES);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'flags') {
          if (buf.length < 4) return;
          noZeroes = (buf.readUInt32BE(0) & 2) !== 0;
          buf = buf.subarray(4);
          phase = 'opts';
        } else if (phase === 'opts') {
          if (buf.length < 16) return;
          const opt = buf.readUInt32BE(8);
          const len = buf.readUInt32BE(12);
          if (buf.length < 16 + len) return;
          const data = buf.subarray(16, 16 + len);
          buf = buf.subarray(16 + len);
          if (opt === Opt.EXPORT_NAME) {
            if (!(o.exports ?? ['']).includes(data.toString())) return void sock.destroy();
            sock.write(Buffer.concat([u64(size), u16(tx), noZeroes ? Buffer.alloc(0) : Buffer.alloc(124)]));
            phase = 'tx';
          } else if (opt === Opt.STRUCTURED_REPLY) {
            optReply(opt, o.structured === false ? Rep.ERR_UNSUP : Rep.ACK);
          } else if (opt === Opt.SET_META_CONTEXT) {
            if (o.structured === false) optReply(opt, Rep.ERR_INVALID);
            else {
              optReply(opt, Rep.META_CONTEXT, Buffer.concat([u32(42), Buffer.from('base:allocation')]));
              optReply(opt, Rep.ACK);
            }
          } else if (opt === Opt.GO && !o.noGo) {
            const name = data.subarray(4, 4 + data.readUInt32BE(0)).toString();
            if (!(o.exports ?? ['']).includes(name)) {
              optReply(opt, Rep.ERR_UNKNOWN, Buffer.from(`no export called ${name}`));
              continue;
            }
            if (o.blockSize) optReply(opt, Rep.INFO, Buffer.concat([u16(3), ...o.blockSize.map(u32)]));
            optReply(opt, Rep.INFO, Buffer.concat([u16(0), u64(size), u16(tx)]));
            optReply(opt, Rep.ACK);
            phase = 'tx';
          } else if (opt === Opt.ABORT) {
            optReply(opt, Rep.ACK);
            sock.end();
            return;
          } else {
            optReply(opt, Rep.ERR_UNSUP);
          }
        } else {
          if (buf.length < 28) return;
          const type = buf.readUInt16BE(6);
          const length = buf.readUInt32BE(24);
          const hasData = type === Cmd.WRITE;
          if (hasData && buf.length < 28 + length) return;
          const req: Req = {
            flags: buf.readUInt16BE(4), type, cookie: Buffer.from(buf.subarray(8, 16)),
            offset: Number(buf.readBigUInt64BE(16)), length,
            data: hasData ? Buffer.from(buf.subarray(28, 28 + length)) : undefined,
          };
          buf = buf.subarray(28 + (hasData ? length : 0));
          if (type === Cmd.DISC) {
            discs++;
            sock.end();
            return;
          }
          all.push(req);
          o.onRequest?.(req, sock, all);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { addr: `unix:${path}`, server, sockets, discs: () => discs };
}

test('handshake: GO errors name the export; non-fixed-newstyle servers are refused', async (t) => {
  const f = await fakeServer(t, { exports: ['disk0'] });
  await assert.rejects(NbdClient.connect(f.addr, { exportName: 'nope' }), (e: Error) => {
    assert.ok(e instanceof InvalidArgumentError, e.constructor.name);
    assert.match(e.message, /export "nope".*not available.*no export called nope/);
    return true;
  });
  const old = await fakeServer(t, { handshakeFlags: 0 });
  await assert.rejects(NbdClient.connect(old.addr), /does not support fixed newstyle/);
  await assert.rejects(NbdClient.connect(`unix:${join(tempDir(t), 'absent.sock')}`), (e: Error) => e instanceof IoError && /cannot connect/.test(e.message));
});

test('handshake: a server that never greets hits connectTimeoutMs', async (t) => {
  const path = join(tempDir(t), 'mute.sock');
  const held: Socket[] = [];
  const mute = createServer((s) => held.push(s));
  await new Promise<void>((r) => mute.listen(path, r));
  t.after(() => {
    for (const s of held) s.destroy();
    mute.close();
  });
  const t0 = Date.now();
  await assert.rejects(NbdClient.connect(`unix:${path}`, { connectTimeoutMs: 200 }), (e: Error) => e instanceof IoError && /timed out after 200 ms/.test(e.message));
  assert.ok(Date.now() - t0 < 2000);
});

test('handshake: falls back to NBD_OPT_EXPORT_NAME when GO is unsupported (with and without NO_ZEROES)', async (t) => {
  for (const handshakeFlags of [1, 3]) {
    const f = await fakeServer(t, {
      noGo: true, handshakeFlags, size: 65536, exports: ['x'],
      onRequest: (req, sock) => sock.write(req.type === Cmd.READ
        ? dataChunk(req.cookie, ReplyFlags.DONE, req.offset, Buffer.alloc(req.length, 7))
        : simpleReply(req.cookie, 0)),
    });
    const c = await NbdClient.connect(f.addr, { exportName: 'x' });
    assert.equal(c.size, 65536);
    assert.equal(c.exportName, 'x');
    assert.deepEqual(c.blockSize, { minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 });
    const b = Buffer.alloc(100);
    await c.read(10, b);
    assert.deepEqual(b, Buffer.alloc(100, 7));
    await c.close();
    assert.equal(f.discs(), 1);
    const bad = await fakeServer(t, { noGo: true, handshakeFlags, exports: ['x'] });
    await assert.rejects(NbdClient.connect(bad.addr, { exportName: 'y' }), /export "y".*probably does not exist/);
  }
});

test('pipelining: replies in reverse order with mixed data/hole chunks land in the right buffers', async (t) => {
  const N = 20;
  let maxSeen = 0;
  const f = await fakeServer(t, {
    onRequest: (_req, sock, all) => {
      maxSeen = Math.max(maxSeen, all.length);
      if (all.length < N) return;
      for (const r of all.splice(0).reverse()) {
        const half = r.length / 2;
        // Second half first, as a hole for odd offsets; first half as data.
        const first = Buffer.alloc(half, (r.offset / 4096) & 0xff);
        const second = (r.offset / 4096) % 2 ? null : Buffer.alloc(half, 0x55);
        sock.write(second
          ? dataChunk(r.cookie, 0, r.offset + half, second)
          : holeChunk(r.cookie, 0, r.offset + half, half));
        sock.write(dataChunk(r.cookie, ReplyFlags.DONE, r.offset, first));
      }
    },
  });
  const c = await NbdClient.connect(f.addr, { maxInFlight: N });
  const bufs = Array.from({ length: N }, () => Buffer.alloc(4096, 0xee));
  const done = Promise.all(bufs.map((b, i) => c.read(i * 4096, b)));
  assert.equal(c.inFlight, N);
  await done;
  assert.equal(maxSeen, N);
  bufs.forEach((b, i) => {
    assert.deepEqual(b.subarray(0, 2048), Buffer.alloc(2048, i), `first half of ${i}`);
    assert.deepEqual(b.subarray(2048), Buffer.alloc(2048, i % 2 ? 0 : 0x55), `second half of ${i}`);
  });
  await c.close();
});

test('pipelining: maxInFlight bounds requests on the wire, the rest queue', async (t) => {
  let outstanding = 0;
  let maxSeen = 0;
  const f = await fakeServer(t, {
    onRequest: (req, sock) => {
      outstanding++;
      maxSeen = Math.max(maxSeen, outstanding);
      setTimeout(() => {
        outstanding--;
        sock.write(simpleReply(req.cookie, 0));
      }, 2);
    },
  });
  const c = await NbdClient.connect(f.addr, { maxInFlight: 4 });
  const all = Promise.all(Array.from({ length: 40 }, (_, i) => c.write(i * 512, Buffer.alloc(512, i))));
  assert.equal(c.inFlight, 4);
  assert.equal(c.queued, 36);
  await all;
  assert.equal(maxSeen, 4);
  await c.close();
});

test('structured errors: errno and message reach the caller; unknown error types fail only that request', async (t) => {
  const f = await fakeServer(t, {
    onRequest: (req, sock) => {
      if (req.type === Cmd.WRITE && req.offset === 0) sock.write(errorChunk(req.cookie, ReplyFlags.DONE, NbdErrno.ENOSPC, 'quota exceeded'));
      else if (req.type === Cmd.WRITE) sock.write(errorChunk(req.cookie, ReplyFlags.DONE, NbdErrno.EIO, 'odd', 0x8000 + 77));
      else if (req.type === Cmd.READ) {
        sock.write(dataChunk(req.cookie, 0, req.offset, Buffer.alloc(req.length)));
        const m = Buffer.from('bad sector');
        sock.write(chunk(req.cookie, ReplyFlags.DONE, ReplyType.ERROR_OFFSET, Buffer.concat([u32(NbdErrno.EIO), u16(m.length), m, u64(req.offset + 10)])));
      } else sock.write(simpleReply(req.cookie, req.type === Cmd.TRIM ? NbdErrno.EPERM : 0));
    },
  });
  const c = await NbdClient.connect(f.addr);
  await assert.rejects(c.write(0, Buffer.alloc(10)), (e: Error) => e instanceof NoSpaceError && /quota exceeded/.test(e.message));
  await assert.rejects(c.write(512, Buffer.alloc(10)), (e: Error) => e instanceof IoError && /odd/.test(e.message));
  await assert.rejects(c.read(100, Buffer.alloc(50)), (e: Error) => e instanceof IoError && /bad sector.*offset 110/.test(e.message));
  await assert.rejects(c.trim(0, 4096), ReadOnlyError);
  await c.flush(); // the connection survived all of that
  await c.close();
});

test('protocol violations drop the connection and reject every pending and later request', async (t) => {
  const f = await fakeServer(t, {
    onRequest: (req, sock, all) => {
      if (all.length < 3) return;
      // A data chunk past the end of the request it answers.
      sock.write(dataChunk(req.cookie, ReplyFlags.DONE, req.offset + 1, Buffer.alloc(req.length)));
    },
  });
  const c = await NbdClient.connect(f.addr);
  let closeEvent: unknown = 'none';
  c.on('close', (e) => (closeEvent = e));
  const reads = [0, 1, 2].map((i) => c.read(i * 512, Buffer.alloc(512)));
  for (const r of reads) await assert.rejects(r, (e: Error) => e instanceof ProtocolError && /outside the request/.test(e.message));
  const err = await c.closed;
  assert.ok(err instanceof ProtocolError);
  assert.equal(closeEvent, err);
  await assert.rejects(c.read(0, Buffer.alloc(1)), ProtocolError);
  await c.close(); // still resolves
});

test('more violations: success without all data, simple read reply under structured replies, wrong context id', async (t) => {
  const cases: [string, (req: Req, sock: Socket) => void, RegExp][] = [
    ['gap', (req, sock) => sock.write(dataChunk(req.cookie, ReplyFlags.DONE, req.offset, Buffer.alloc(req.length - 1))), /only \d+ bytes/],
    ['simple', (req, sock) => sock.write(simpleReply(req.cookie, 0, Buffer.alloc(req.length))), /simple reply with data/],
    ['overlap', (req, sock) => {
      sock.write(dataChunk(req.cookie, 0, req.offset, Buffer.alloc(8)));
      sock.write(holeChunk(req.cookie, ReplyFlags.DONE, req.offset + 4, req.length - 4));
    }, /overlaps/],
    ['unknown cookie', (_req, sock) => sock.write(simpleReply(cookieOf(999999), 0)), /unknown handle/],
    ['unknown type', (req, sock) => sock.write(chunk(req.cookie, ReplyFlags.DONE, 77, Buffer.alloc(4))), /unknown structured reply type 77/],
  ];
  for (const [name, reply, re] of cases) {
    const f = await fakeServer(t, { onRequest: reply });
    const c = await NbdClient.connect(f.addr);
    await assert.rejects(c.read(0, Buffer.alloc(64)), (e: Error) => e instanceof ProtocolError && re.test(e.message), name);
    assert.ok((await c.closed) instanceof ProtocolError, name);
  }
  const f = await fakeServer(t, { onRequest: (req, sock) => sock.write(statusChunk(req.cookie, ReplyFlags.DONE, 41, [[512, 0]])) });
  const c = await NbdClient.connect(f.addr);
  assert.ok(c.capabilities.canExtents);
  await assert.rejects(c.extents(0, 512), /unknown meta context 41/);
});

test('a dropped connection rejects pending requests with IoError, never hangs', async (t) => {
  const f = await fakeServer(t, { onRequest: (_req, sock, all) => all.length === 5 && sock.destroy() });
  const c = await NbdClient.connect(f.addr);
  const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => c.write(i * 4096, Buffer.alloc(4096))));
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok((r).reason instanceof IoError);
  }
  assert.ok((await c.closed) instanceof IoError);
  await assert.rejects(c.flush(), IoError);
  await c.close();
});

test('ESHUTDOWN from the server fails the request and makes the client disconnect softly', async (t) => {
  const f = await fakeServer(t, { onRequest: (req, sock) => sock.write(simpleReply(req.cookie, NbdErrno.ESHUTDOWN)) });
  const c = await NbdClient.connect(f.addr);
  await assert.rejects(c.flush(), ShutdownError);
  assert.equal(await c.closed, undefined);
  assert.equal(f.discs(), 1);
  await assert.rejects(c.read(0, Buffer.alloc(1)), ShutdownError);
});

test('close() waits for outstanding requests, sends NBD_CMD_DISC once and is idempotent', async (t) => {
  const f = await fakeServer(t, { onRequest: (req, sock) => setTimeout(() => sock.write(simpleReply(req.cookie, 0)), 20) });
  const c = await NbdClient.connect(f.addr);
  const w = c.write(0, Buffer.alloc(100, 1), { fua: true });
  const closing = c.close();
  await assert.rejects(c.write(0, Buffer.alloc(1)), ShutdownError);
  await w;
  await Promise.all([closing, c.close()]);
  assert.equal(f.discs(), 1);
  assert.equal(await c.closed, undefined);
  assert.ok(c.isClosed);
});

test('flags: FUA, NO_HOLE and FAST_ZERO go on the wire only when offered; local read-only refusal', async (t) => {
  const seen: Req[] = [];
  const onRequest = (req: Req, sock: Socket) => {
    seen.push(req);
    sock.write(simpleReply(req.cookie, 0));
  };
  const base = TxFlags.HAS_FLAGS | TxFlags.SEND_FLUSH | TxFlags.SEND_WRITE_ZEROES;
  const f = await fakeServer(t, { txFlags: base, onRequest });
  const c = await NbdClient.connect(f.addr);
  await c.write(0, Buffer.alloc(8), { fua: true });
  await c.writeZeroes(0, 4096, { noHole: true });
  await assert.rejects(c.writeZeroes(0, 4096, { fastZero: true }), NotSupportedError);
  await c.trim(0, 4096); // not offered: a no-op
  await c.cache(0, 4096); // not offered: a no-op
  assert.deepEqual(seen.map((r) => [r.type, r.flags]), [[Cmd.WRITE, 0], [Cmd.FLUSH, 0], [Cmd.WRITE_ZEROES, CmdFlags.NO_HOLE]]);
  await c.close();

  seen.length = 0;
  const g = await fakeServer(t, { txFlags: base | TxFlags.SEND_FUA | TxFlags.SEND_FAST_ZERO | TxFlags.SEND_TRIM, onRequest });
  const d = await NbdClient.connect(g.addr);
  await d.write(0, Buffer.alloc(8), { fua: true });
  await d.writeZeroes(0, 4096, { fastZero: true, fua: true });
  await d.trim(0, 4096);
  assert.deepEqual(seen.map((r) => [r.type, r.flags]), [
    [Cmd.WRITE, CmdFlags.FUA], [Cmd.WRITE_ZEROES, CmdFlags.FAST_ZERO | CmdFlags.FUA], [Cmd.TRIM, 0],
  ]);
  await d.close();

  const ro = await fakeServer(t, { txFlags: TxFlags.HAS_FLAGS | TxFlags.READ_ONLY, onRequest });
  const e = await NbdClient.connect(ro.addr);
  assert.ok(e.capabilities.readOnly);
  seen.length = 0;
  await assert.rejects(e.write(0, Buffer.alloc(1)), ReadOnlyError);
  await assert.rejects(e.writeZeroes(0, 1), ReadOnlyError);
  await assert.rejects(e.trim(0, 1), ReadOnlyError);
  assert.equal(seen.length, 0);
  await e.close();
});

test('splitting and alignment: large I/O splits at the maximum block size; minimum > 1 widens reads, refuses unaligned writes', async (t) => {
  const seen: Req[] = [];
  const disk = Buffer.alloc(1 << 20);
  for (let i = 0; i < disk.length; i++) disk[i] = (i * 7) & 0xff;
  const f = await fakeServer(t, {
    blockSize: [512, 4096, 65536],
    onRequest: (req, sock) => {
      seen.push(req);
      if (req.type === Cmd.READ) sock.write(dataChunk(req.cookie, ReplyFlags.DONE, req.offset, disk.subarray(req.offset, req.offset + req.length)));
      else if (req.type === Cmd.BLOCK_STATUS) sock.write(statusChunk(req.cookie, ReplyFlags.DONE, 42, [[req.length, 0]]));
      else sock.write(simpleReply(req.cookie, 0));
    },
  });
  const c = await NbdClient.connect(f.addr);
  assert.deepEqual(c.blockSize, { minimum: 512, preferred: 4096, maximum: 65536 });
  const b = Buffer.alloc(200_000);
  await c.read(1000, b);
  assert.deepEqual(b, disk.subarray(1000, 201_000));
  const reads = seen.filter((r) => r.type === Cmd.READ);
  assert.deepEqual(reads.map((r) => [r.offset, r.length]), [[512, 65536], [66048, 65536], [131584, 65536], [197120, 4096]]);
  await assert.rejects(c.write(100, Buffer.alloc(512)), InvalidArgumentError);
  await assert.rejects(c.writeZeroes(512, 100), InvalidArgumentError);
  seen.length = 0;
  await c.write(0, Buffer.alloc(150 * 1024));
  assert.deepEqual(seen.map((r) => r.length), [65536, 65536, 22528]);
  seen.length = 0;
  await c.trim(100, 2000); // shrinks to [512, 2048)
  assert.deepEqual(seen.map((r) => [r.type, r.offset, r.length]), [[Cmd.TRIM, 512, 1536]]);
  seen.length = 0;
  assert.deepEqual(await c.extents(1000, 100), [{ offset: 1000, length: 100, flags: 0 }]);
  assert.deepEqual(seen.map((r) => [r.type, r.offset, r.length]), [[Cmd.BLOCK_STATUS, 512, 1024]]);
  await c.close();
});

test('without structured replies, reads use simple replies and extents report data', async (t) => {
  const f = await fakeServer(t, {
    structured: false,
    onRequest: (req, sock) => sock.write(req.type === Cmd.READ ? simpleReply(req.cookie, 0, Buffer.alloc(req.length, 9)) : simpleReply(req.cookie, 0)),
  });
  const c = await NbdClient.connect(f.addr);
  assert.equal(c.structuredReplies, false);
  assert.equal(c.capabilities.canExtents, false);
  const b = Buffer.alloc(3000);
  await c.read(0, b);
  assert.deepEqual(b, Buffer.alloc(3000, 9));
  assert.deepEqual(await c.extents(10, 100), [{ offset: 10, length: 100, flags: 0 }]);
  await c.close();
});
