// Malformed handshakes, protocol violations and abusive clients: each costs
// only its own connection, answers follow the spec, and the server keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MemoryDisk } from '../../src/block/memory.ts';
import { FilterDisk } from '../../src/block/filter.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { Cmd, CmdFlags, Opt, Rep, ReplyType, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC } from '../../src/nbd/protocol.ts';
import { NbdErrno } from '../../src/nbd/errno.ts';
import type { Address } from '../../src/util/address.ts';
import { RawPeer, goData, metaData } from '../helpers/raw-nbd.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

async function serve(t: TestCtx, opts: { handshakeTimeoutMs?: number; maxConnections?: number } = {}) {
  const dir = tempDir(t);
  const disk = new MemoryDisk(1 << 20);
  const server = new NbdServer({
    exports: [{ name: 'x', disk, description: 'robust' }],
    limits: opts.handshakeTimeoutMs ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {},
    ...(opts.maxConnections ? { maxConnections: opts.maxConnections } : {}),
  });
  const addr = await server.listen({ kind: 'unix', path: join(dir, 's.sock') });
  t.after(() => server.close(1000));
  return { server, addr, disk };
}

/** Proves the server still serves: a full GO and a verified write/read on a fresh connection. */
async function stillServes(addr: Address): Promise<void> {
  const p = await enterTransmission(addr, true);
  p.sendRequest(Cmd.WRITE, 4096, 4, { cookie: 7n, payload: Buffer.from('live') });
  const w = await p.reader.read(16);
  assert.equal(w.readUInt32BE(0), SIMPLE_REPLY_MAGIC);
  assert.equal(w.readUInt32BE(4), 0);
  p.sendRequest(Cmd.READ, 4096, 4, { cookie: 8n });
  const r = await p.reader.read(20 + 8 + 4);
  assert.equal(r.subarray(28).toString(), 'live');
  p.close();
}

async function enterTransmission(addr: Address, structured: boolean): Promise<RawPeer> {
  const p = await RawPeer.connect(addr);
  await p.greet();
  if (structured) {
    p.sendOption(Opt.STRUCTURED_REPLY);
    assert.equal((await p.readOptionReply()).type, Rep.ACK);
    p.sendOption(Opt.SET_META_CONTEXT, metaData('x', ['base:allocation']));
    const m = await p.readUntilFinal();
    assert.equal(m[0]!.type, Rep.META_CONTEXT);
  }
  p.sendOption(Opt.GO, goData('x'));
  const replies = await p.readUntilFinal();
  assert.equal(replies.at(-1)!.type, Rep.ACK);
  return p;
}

test('unknown client flags close only that connection', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet(0x80000003);
  await p.closed;
  await stillServes(addr);
});

test('bad option magic closes the connection', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet();
  p.sendOption(Opt.GO, goData('x'), 0x1234n);
  await p.closed;
  await stillServes(addr);
});

test('unknown and unsupported options get ERR_UNSUP and negotiation continues', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet();
  for (const opt of [99, Opt.STARTTLS, Opt.EXTENDED_HEADERS, Opt.PEEK_EXPORT, 0x7fffffff]) {
    p.sendOption(opt, Buffer.from('some data'));
    const r = await p.readOptionReply();
    assert.equal(r.opt, opt);
    assert.equal(r.type, Rep.ERR_UNSUP, `option ${opt}`);
  }
  p.sendOption(Opt.GO, goData('x'));
  assert.equal((await p.readUntilFinal()).at(-1)!.type, Rep.ACK);
  p.close();
});

test('invalid option payloads get ERR_INVALID / ERR_UNKNOWN / ERR_TOO_BIG, not a dropped connection', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet();
  p.sendOption(Opt.LIST, Buffer.from('junk'));
  assert.equal((await p.readOptionReply()).type, Rep.ERR_INVALID);
  p.sendOption(Opt.STRUCTURED_REPLY, Buffer.from('x'));
  assert.equal((await p.readOptionReply()).type, Rep.ERR_INVALID);
  p.sendOption(Opt.SET_META_CONTEXT, metaData('x', ['base:allocation']));
  assert.equal((await p.readOptionReply()).type, Rep.ERR_INVALID, 'meta context before structured replies');
  const bad = goData('x');
  bad.writeUInt32BE(999, 0); // name length beyond the payload
  p.sendOption(Opt.GO, bad);
  assert.equal((await p.readOptionReply()).type, Rep.ERR_INVALID);
  p.sendOption(Opt.INFO, Buffer.concat([goData('x'), Buffer.from([0])]));
  assert.equal((await p.readOptionReply()).type, Rep.ERR_INVALID, 'trailing byte');
  p.sendOption(Opt.GO, goData('nope'));
  const unknown = await p.readOptionReply();
  assert.equal(unknown.type, Rep.ERR_UNKNOWN);
  assert.match(unknown.data.toString(), /nope/);
  p.sendOption(Opt.GO, Buffer.alloc(200 * 1024, 1));
  assert.equal((await p.readOptionReply()).type, Rep.ERR_TOO_BIG);
  p.sendOption(Opt.STRUCTURED_REPLY);
  assert.equal((await p.readOptionReply()).type, Rep.ACK);
  p.sendOption(Opt.SET_META_CONTEXT, metaData('x', ['base:allocation', 'qemu:dirty-bitmap:a', 'x-junk:']));
  const meta = await p.readUntilFinal();
  assert.deepEqual(meta.map((m) => m.type), [Rep.META_CONTEXT, Rep.ACK]);
  assert.equal(meta[0]!.data.subarray(4).toString(), 'base:allocation');
  p.sendOption(Opt.LIST_META_CONTEXT, metaData('x', []));
  const listed = await p.readUntilFinal();
  assert.deepEqual(listed.map((m) => m.type), [Rep.META_CONTEXT, Rep.ACK]);
  p.sendOption(Opt.INFO, goData('x', [0, 1, 2, 3]));
  const info = await p.readUntilFinal();
  const kinds = info.filter((r) => r.type === Rep.INFO).map((r) => r.data.readUInt16BE(0)).sort();
  assert.deepEqual(kinds, [0, 1, 2, 3]);
  p.sendOption(Opt.GO, goData('x'));
  assert.equal((await p.readUntilFinal()).at(-1)!.type, Rep.ACK);
  p.close();
});

test('an absurd option length drops the connection without reading it', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet();
  p.sendOption(Opt.GO, Buffer.alloc(0), undefined, 0xffffffff);
  await p.closed;
  await stillServes(addr);
});

test('EXPORT_NAME: unknown name closes; known name answers size and flags (with and without zeroes)', async (t) => {
  const { addr } = await serve(t);
  const a = await RawPeer.connect(addr);
  await a.greet();
  a.sendOption(Opt.EXPORT_NAME, Buffer.from('missing'));
  await a.closed;

  for (const [flags, len] of [[3, 10], [1, 134]] as const) {
    const b = await RawPeer.connect(addr);
    await b.greet(flags);
    b.sendOption(Opt.EXPORT_NAME, Buffer.from('x'));
    const r = await b.reader.read(len);
    assert.equal(Number(r.readBigUInt64BE(0)), 1 << 20);
    assert.equal(r.readUInt16BE(8) & 1, 1, 'HAS_FLAGS');
    b.sendRequest(Cmd.READ, 0, 8, { cookie: 5n });
    const reply = await b.reader.read(16 + 8);
    assert.equal(reply.readUInt32BE(0), SIMPLE_REPLY_MAGIC, 'simple replies without negotiation');
    b.close();
  }
});

test('ABORT is acknowledged and the connection closes', async (t) => {
  const { addr } = await serve(t);
  const p = await RawPeer.connect(addr);
  await p.greet();
  p.sendOption(Opt.ABORT);
  assert.equal((await p.readOptionReply()).type, Rep.ACK);
  await p.closed;
});

test('a silent client is dropped after the handshake timeout', async (t) => {
  const { addr } = await serve(t, { handshakeTimeoutMs: 300 });
  const p = await RawPeer.connect(addr);
  const started = Date.now();
  await p.closed;
  assert.ok(Date.now() - started < 5000);
  await stillServes(addr);
});

test('connections beyond the limit are refused, the others keep working', async (t) => {
  const { addr } = await serve(t, { maxConnections: 2 });
  const a = await enterTransmission(addr, true);
  const b = await enterTransmission(addr, false);
  const c = await RawPeer.connect(addr);
  await c.closed;
  a.sendRequest(Cmd.FLUSH, 0, 0, { cookie: 1n });
  assert.equal((await a.reader.read(16)).readUInt32BE(4), 0);
  b.close();
  a.close();
});

test('transmission: unknown commands and bad flags get EINVAL and the connection lives', async (t) => {
  const { addr } = await serve(t);
  const p = await enterTransmission(addr, false);
  p.sendRequest(42, 0, 0, { cookie: 11n });
  let r = await p.reader.read(16);
  assert.equal(r.readUInt32BE(4), NbdErrno.EINVAL);
  assert.equal(r.readBigUInt64BE(8), 11n, 'cookie echoed');
  p.sendRequest(Cmd.BLOCK_STATUS, 0, 4096, { cookie: 12n });
  r = await p.reader.read(16);
  assert.equal(r.readUInt32BE(4), NbdErrno.EINVAL, 'block status without a context');
  p.sendRequest(Cmd.READ, 0, 4096, { cookie: 13n, flags: CmdFlags.DF });
  r = await p.reader.read(16);
  assert.equal(r.readUInt32BE(4), NbdErrno.EINVAL, 'DF without structured replies');
  // A rejected write's payload is consumed, so the next request parses.
  p.sendRequest(Cmd.WRITE, (1 << 20) - 2, 4, { cookie: 14n, payload: Buffer.from('abcd') });
  r = await p.reader.read(16);
  assert.equal(r.readUInt32BE(4), NbdErrno.ENOSPC);
  p.sendRequest(Cmd.READ, 2 ** 62, 1, { cookie: 15n });
  r = await p.reader.read(16);
  assert.equal(r.readUInt32BE(4), NbdErrno.EINVAL, 'offset beyond 2^53');
  p.sendRequest(Cmd.READ, 0, 3, { cookie: 16n });
  r = await p.reader.read(16 + 3);
  assert.equal(r.readUInt32BE(4), 0);
  p.close();
});

test('transmission: structured errors carry a message; zero-length reads end with NONE', async (t) => {
  const { addr } = await serve(t);
  const p = await enterTransmission(addr, true);
  p.sendRequest(Cmd.READ, 1 << 20, 512, { cookie: 21n });
  let h = await p.reader.read(20);
  assert.equal(h.readUInt32BE(0), STRUCTURED_REPLY_MAGIC);
  assert.equal(h.readUInt16BE(6), ReplyType.ERROR);
  assert.equal(h.readUInt16BE(4) & 1, 1, 'DONE');
  const body = await p.reader.read(h.readUInt32BE(16));
  assert.equal(body.readUInt32BE(0), NbdErrno.EINVAL);
  assert.match(body.subarray(6, 6 + body.readUInt16BE(4)).toString(), /beyond the end/);
  p.sendRequest(Cmd.READ, 0, 0, { cookie: 22n });
  h = await p.reader.read(20);
  assert.equal(h.readUInt16BE(6), ReplyType.NONE);
  assert.equal(h.readUInt32BE(16), 0);
  p.sendRequest(Cmd.BLOCK_STATUS, 0, 1 << 20, { cookie: 23n, flags: CmdFlags.REQ_ONE });
  h = await p.reader.read(20);
  assert.equal(h.readUInt16BE(6), ReplyType.BLOCK_STATUS);
  assert.equal(h.readUInt32BE(16), 4 + 8, 'exactly one descriptor with REQ_ONE');
  await p.reader.read(12);
  p.close();
});

test('bad request magic or a client vanishing mid-payload costs only that connection', async (t) => {
  const { addr } = await serve(t);
  const other = await enterTransmission(addr, true);
  const a = await enterTransmission(addr, true);
  a.sendRequest(Cmd.READ, 0, 512, { magic: 0xdeadbeef });
  await a.closed;
  const b = await enterTransmission(addr, false);
  b.sendRequest(Cmd.WRITE, 0, 65536, { payload: Buffer.alloc(1000) });
  b.close();
  other.sendRequest(Cmd.FLUSH, 0, 0, { cookie: 3n });
  assert.equal((await other.reader.read(16)).readUInt32BE(4), 0);
  other.close();
  await stillServes(addr);
});

test('seeded random garbage at every stage never crashes the server', async (t) => {
  const { addr } = await serve(t, { handshakeTimeoutMs: 2000 });
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  for (let i = 0; i < 60; i++) {
    const stage = i % 3;
    const p = stage === 2 ? await enterTransmission(addr, rnd() < 0.5) : await RawPeer.connect(addr);
    if (stage === 1) await p.greet(rnd() < 0.5 ? 3 : Math.floor(rnd() * 2 ** 32));
    p.socket.write(junk(1 + Math.floor(rnd() * 300)));
    await new Promise((r) => setTimeout(r, 5));
    p.close();
  }
  await stillServes(addr);
});

/** A disk whose writes take a while, so requests are in flight when the server is asked to stop. */
class SlowDisk extends FilterDisk {
  flushes = 0;
  override async write(offset: number, data: Uint8Array): Promise<void> {
    await new Promise((r) => setTimeout(r, 100));
    return this.inner.write(offset, data);
  }
  override async flush(): Promise<void> {
    this.flushes++;
    return this.inner.flush();
  }
}

test('graceful shutdown: in-flight writes complete, are answered and flushed before the socket closes', async (t) => {
  const dir = tempDir(t);
  const mem = new MemoryDisk(1 << 20);
  const disk = new SlowDisk(mem);
  const server = new NbdServer({ exports: [{ name: 'x', disk }] });
  const addr = await server.listen({ kind: 'unix', path: join(dir, 's.sock') });
  const p = await enterTransmission(addr, false);
  for (let i = 0; i < 8; i++) p.sendRequest(Cmd.WRITE, i * 4096, 4096, { cookie: BigInt(100 + i), payload: Buffer.alloc(4096, i + 1) });
  await new Promise((r) => setTimeout(r, 30));
  const closing = server.close(5000);
  const replies = await p.reader.read(16 * 8);
  for (let i = 0; i < 8; i++) assert.equal(replies.readUInt32BE(i * 16 + 4), 0, `write ${i} succeeded`);
  await closing;
  await p.closed;
  assert.ok(disk.flushes >= 1, 'flushed before closing');
  const b = Buffer.alloc(4096);
  for (let i = 0; i < 8; i++) {
    await mem.read(i * 4096, b);
    assert.ok(b.every((x) => x === i + 1));
  }
});

// Found by the fuzzer (test/fuzz/nbd-server.test.ts, seed 1 input 4656): a
// zero-length WRITE whose header ended the bytes received so far made the
// reader take 0 bytes from an empty buffer and crash the connection.
test('a zero-length WRITE as the last bytes received is answered, and the connection lives', async (t) => {
  const { addr } = await serve(t);
  for (const structured of [false, true]) {
    const p = await enterTransmission(addr, structured);
    p.sendRequest(Cmd.WRITE, 4096, 0, { cookie: 41n });
    const w = await p.reader.read(16);
    assert.equal(w.readUInt32BE(0), SIMPLE_REPLY_MAGIC);
    assert.equal(w.readUInt32BE(4), 0, 'no error');
    assert.equal(w.readBigUInt64BE(8), 41n);
    p.sendRequest(Cmd.FLUSH, 0, 0, { cookie: 42n });
    const f = await p.reader.read(16);
    assert.equal(f.readBigUInt64BE(8), 42n);
    p.close();
  }
});

test('a large WRITE reaches the disk as the socket chunks it arrived in, unjoined, and reads back whole', async (t) => {
  const dir = tempDir(t);
  const mem = new MemoryDisk(4 << 20);
  const chunkCounts: number[] = [];
  class ChunkCounting extends FilterDisk {
    override writev(offset: number, chunks: readonly Uint8Array[], opts?: { fua?: boolean }): Promise<void> {
      chunkCounts.push(chunks.length);
      return super.writev(offset, chunks, opts);
    }
  }
  const server = new NbdServer({ exports: [{ name: 'x', disk: new ChunkCounting(mem) }] });
  const addr = await server.listen({ kind: 'unix', path: join(dir, 's.sock') });
  t.after(() => server.close(1000));
  const p = await enterTransmission(addr, true);
  const payload = Buffer.alloc(1 << 20);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32BE(i, i);
  // Node reads a socket 64 KiB at a time, so 1 MiB arrives in at least 16 chunks.
  p.sendRequest(Cmd.WRITE, 4096 + 3, payload.length, { cookie: 5n, payload });
  const w = await p.reader.read(16);
  assert.equal(w.readUInt32BE(4), 0, 'no error');
  assert.equal(chunkCounts.length, 1);
  assert.ok(chunkCounts[0]! >= 16, `handed over as ${chunkCounts[0]} chunks`);
  const back = Buffer.alloc(payload.length);
  await mem.read(4096 + 3, back);
  assert.ok(back.equals(payload), 'the bytes are those sent, in order');
  p.close();
});
