// WanProxy with real sockets on loopback: rate, delay, sharing, back-pressure,
// faults and data integrity, measured with wall-clock time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { WanProxy, type WanProxyOptions } from '../../src/wan-emulator/proxy.ts';
import type { Address } from '../../src/util/address.ts';
import { tempDir } from '../helpers/tmp.ts';
import { echoServer, listenFor } from '../helpers/net.ts';
import type { TestCtx } from '../helpers/test-context.ts';

const LOOP: Address = { kind: 'tcp', host: '127.0.0.1', port: 0 };

/** Reads everything, then answers "<bytes> <sha256>" and closes. */
function sinkServer(t: TestCtx) {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      n += d.length;
      h.update(d);
    });
    s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
  });
  return listenFor(t, server);
}

async function startProxy(t: TestCtx, to: Address, opts: Partial<WanProxyOptions> & { bandwidthBps: number; rttMs: number }, at: Address = LOOP) {
  const proxy = new WanProxy({ listen: at, to, ...opts });
  const address = await proxy.listen();
  t.after(() => proxy.close());
  return { proxy, address };
}

function connect(addr: Address): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = addr.kind === 'unix' ? net.connect({ path: addr.path, allowHalfOpen: true }) : net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true });
    s.setNoDelay?.(true);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Sends `data`, half-closes, resolves with the sink's answer and the time it took. */
async function sendToSink(addr: Address, data: Buffer): Promise<{ ms: number; bytes: number; hash: string }> {
  const s = await connect(addr);
  const t0 = performance.now();
  s.end(data);
  const answer = await new Promise<string>((resolve, reject) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  const ms = performance.now() - t0;
  s.destroy();
  const [bytes, hash] = answer.split(' ');
  return { ms, bytes: Number(bytes), hash: hash! };
}

/** Reads exactly n bytes from s. */
function readExactly(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        s.off('error', reject);
        const all = Buffer.concat(parts);
        if (all.length > n) s.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

async function pingRtts(s: net.Socket, rounds: number, size = 100): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const msg = Buffer.alloc(size, i);
    const t0 = performance.now();
    s.write(msg);
    const back = await readExactly(s, size);
    out.push(performance.now() - t0);
    assert.ok(back.equals(msg));
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('(a) 5 MB at 20 Mbit/s, 40 ms rtt takes 2.0 s + rtt (±10 %) and arrives intact', async (t) => {
  const sink = await sinkServer(t);
  const { proxy, address } = await startProxy(t, sink, { bandwidthBps: 20e6, rttMs: 40 });
  const data = randomBytes(5_000_000);
  const r = await sendToSink(address, data);
  const expected = 2000 + 40;
  t.diagnostic(`5 MB: ${r.ms.toFixed(0)} ms (expected ${expected}), ${((data.length * 8) / (r.ms - 40) / 1e3).toFixed(2)} Mbit/s`);
  assert.equal(r.bytes, data.length);
  assert.equal(r.hash, sha(data));
  assert.ok(Math.abs(r.ms - expected) <= expected * 0.1, `took ${r.ms.toFixed(0)} ms, expected ${expected} ±10 %`);
  const s = proxy.stats();
  assert.equal(s.forward.bytesOut, data.length);
  assert.equal(s.forward.bytesIn, data.length);
  assert.ok(s.reverse.bytesOut > 64 && s.reverse.bytesOut < 100);
});

test('(b) ping-pong of small messages shows the configured rtt', async (t) => {
  const echo = await echoServer(t);
  const { address } = await startProxy(t, echo.address, { bandwidthBps: 20e6, rttMs: 40 });
  const s = await connect(address);
  t.after(() => s.destroy());
  await pingRtts(s, 2); // warm-up
  const rtts = await pingRtts(s, 20);
  const m = median(rtts);
  t.diagnostic(`rtt median ${m.toFixed(2)} ms, min ${Math.min(...rtts).toFixed(2)}, max ${Math.max(...rtts).toFixed(2)}`);
  assert.ok(m >= 35 && m <= 60, `median rtt ${m.toFixed(2)} ms`);
  assert.ok(Math.min(...rtts) >= 39, `no reply may beat the rtt: min ${Math.min(...rtts).toFixed(2)} ms`);
});

test('(c) two concurrent connections share the bandwidth (sum ≈ rate, both progress)', async (t) => {
  const sink = await sinkServer(t);
  const { address } = await startProxy(t, sink, { bandwidthBps: 20e6, rttMs: 40 });
  const a = randomBytes(2_500_000);
  const b = randomBytes(2_500_000);
  const t0 = performance.now();
  const [ra, rb] = await Promise.all([sendToSink(address, a), sendToSink(address, b)]);
  const total = performance.now() - t0;
  const rate = ((a.length + b.length) * 8) / (total - 40) / 1e3;
  t.diagnostic(`two connections: ${ra.ms.toFixed(0)} and ${rb.ms.toFixed(0)} ms; together ${rate.toFixed(2)} Mbit/s`);
  assert.equal(ra.hash, sha(a));
  assert.equal(rb.hash, sha(b));
  assert.ok(Math.abs(rate - 20) <= 2, `sum of rates ${rate.toFixed(2)} Mbit/s, expected 20 ±10 %`);
  // Fair enough: the first to finish did not hog the link (it finished near the end too).
  assert.ok(Math.min(ra.ms, rb.ms) >= 0.7 * Math.max(ra.ms, rb.ms), `finish times ${ra.ms.toFixed(0)} / ${rb.ms.toFixed(0)} ms`);
});

test('(d) back-pressure: a sender pushing 50 MB into a 10 Mbit/s link is held back by TCP, not buffered', async (t) => {
  const sink = await sinkServer(t);
  const { proxy, address } = await startProxy(t, sink, { bandwidthBps: 10e6, rttMs: 40 });
  const s = await connect(address);
  t.after(() => s.destroy());
  s.on('error', () => {});
  const data = Buffer.alloc(50 << 20, 0x5a);
  const t0 = performance.now();
  s.write(data);
  let maxHeld = 0;
  while (performance.now() - t0 < 1500) {
    await sleep(10);
    maxHeld = Math.max(maxHeld, proxy.stats().forward.heldBytes);
  }
  const elapsed = performance.now() - t0;
  const st = proxy.stats();
  const bound = st.forward.boundBytes;
  const expectedOut = ((elapsed - 20) * 10e6) / 8000;
  t.diagnostic(`bound ${bound} B, peak held ${st.forward.maxHeldBytes} B, delivered ${st.forward.bytesOut} B in ${elapsed.toFixed(0)} ms (link rate allows ${expectedOut.toFixed(0)}), proxy read ${st.forward.bytesIn} B of 50 MiB`);
  // One socket read (64 KiB) may land after the bound is crossed, before the socket is paused.
  assert.ok(st.forward.maxHeldBytes <= bound + 65536, `held ${st.forward.maxHeldBytes} > bound ${bound} + 64 KiB`);
  assert.ok(maxHeld <= bound + 65536);
  assert.ok(st.buffered.forward <= 65536, 'the receiver keeps up: nothing piles up in write buffers');
  assert.equal(st.forward.blocked, true, 'the direction is blocked, waiting to drain');
  assert.ok(st.forward.bytesOut <= expectedOut * 1.05 + 65536, 'never faster than the link');
  assert.ok(st.forward.bytesOut >= expectedOut * 0.9, 'and not slower');
  // The proxy read only what it forwarded plus the bound: the rest waits in the sender (TCP flow control).
  assert.ok(st.forward.bytesIn <= st.forward.bytesOut + bound + 65536, `proxy read ${st.forward.bytesIn} B`);
});

test('(d) back-pressure from a slow receiver: the proxy stops reading instead of buffering', async (t) => {
  let upstream: net.Socket | undefined;
  const hash = createHash('sha256');
  let received = 0;
  const server = net.createServer((s) => {
    upstream = s;
    s.pause(); // does not read for now
    s.on('data', (d: Buffer) => {
      hash.update(d);
      received += d.length;
    });
  });
  const to = await listenFor(t, server);
  const { proxy, address } = await startProxy(t, to, { bandwidthBps: 200e6, rttMs: 10 });
  const s = await connect(address);
  t.after(() => s.destroy());
  const data = randomBytes(30 << 20);
  s.write(data);
  let peak = 0;
  for (let i = 0; i < 60; i++) {
    await sleep(10);
    const st = proxy.stats();
    peak = Math.max(peak, st.forward.heldBytes + st.buffered.forward);
  }
  const st = proxy.stats();
  t.diagnostic(`receiver paused: proxy read ${st.forward.bytesIn} B, peak held+buffered ${peak} B, bound ${st.forward.boundBytes} B`);
  // The link's bound, plus the socket write buffer's high-water mark, plus one read per side.
  assert.ok(peak <= st.forward.boundBytes + 3 * 65536, `proxy kept ${peak} B`);
  assert.ok(st.forward.bytesIn < 20 << 20, 'most of the data still waits at the sender');
  upstream!.resume();
  while (received < data.length) await sleep(20);
  assert.equal(hash.digest('hex'), sha(data));
});

test('(e) cut resets every connection; refuseMs refuses new ones, then they are accepted again', async (t) => {
  const echo = await echoServer(t);
  const { proxy, address } = await startProxy(t, echo.address, { bandwidthBps: 100e6, rttMs: 10 });
  const c1 = await connect(address);
  const c2 = await connect(address);
  await pingRtts(c1, 1);
  await pingRtts(c2, 1);
  assert.equal(proxy.stats().connections.active, 2);
  c1.write(Buffer.alloc(100_000)); // bytes on the link are lost with the cut
  const closed = (s: net.Socket) => new Promise<string | undefined>((r) => {
    let code: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
    s.on('close', () => r(code));
  });
  const p1 = closed(c1);
  const p2 = closed(c2);
  const upstreamClosed = Promise.all(echo.accepted.map((s) => new Promise((r) => (s.destroyed ? r(null) : s.on('close', r)))));
  const t0 = performance.now();
  assert.deepEqual(proxy.cut({ refuseMs: 600 }), { connections: 2 });
  assert.deepEqual(await Promise.all([p1, p2]), ['ECONNRESET', 'ECONNRESET']);
  await upstreamClosed;
  assert.ok(performance.now() - t0 < 300, 'connections die at once');
  await sleep(20);
  let st = proxy.stats();
  assert.equal(st.connections.active, 0);
  assert.equal(st.connections.cut, 2);
  assert.equal(st.forward.heldBytes + st.reverse.heldBytes, 0);
  assert.ok(st.refusingForMs > 0);
  await assert.rejects(connect(address), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
  await sleep(Math.max(0, 650 - (performance.now() - t0)));
  const c3 = await connect(address);
  t.after(() => c3.destroy());
  const r = await pingRtts(c3, 3);
  assert.ok(median(r) >= 9);
  st = proxy.stats();
  assert.equal(st.refusingForMs, 0);
  assert.equal(st.connections.active, 1);
  assert.equal(st.connections.total, 3);
});

test('(e) stall delays bytes without loss; both directions wait', async (t) => {
  const echo = await echoServer(t);
  const { proxy, address } = await startProxy(t, echo.address, { bandwidthBps: 50e6, rttMs: 40 });
  const s = await connect(address);
  t.after(() => s.destroy());
  await pingRtts(s, 1);
  const data = randomBytes(1_000_000);
  const t0 = performance.now();
  proxy.stall(400);
  assert.ok(proxy.stats().stalledForMs > 390);
  s.write(data);
  const back = await readExactly(s, data.length);
  const ms = performance.now() - t0;
  // 400 ms stall, then 1 MB each way at 50 Mbit/s (160 ms, the two overlapping) and the rtt.
  t.diagnostic(`1 MB echoed across a 400 ms stall in ${ms.toFixed(0)} ms`);
  assert.ok(back.equals(data), 'every byte, in order');
  assert.ok(ms >= 400 + 160 + 40 - 5 && ms <= 400 + 200 + 40 + 80, `took ${ms.toFixed(0)} ms`);
  // A stall while bytes are on the wire: a ping sent just before does not come back before the stall ends.
  const t1 = performance.now();
  s.write(Buffer.alloc(10, 1));
  await sleep(5);
  proxy.stall(200);
  await readExactly(s, 10);
  const pingMs = performance.now() - t1;
  assert.ok(pingMs >= 200 && pingMs <= 200 + 40 + 40, `ping across the stall took ${pingMs.toFixed(0)} ms`);
});

test('(e) set changes the rate and the rtt live', async (t) => {
  const sink = await sinkServer(t);
  const echo = await echoServer(t);
  const { proxy: p1, address: toSink } = await startProxy(t, sink, { bandwidthBps: 20e6, rttMs: 20 });
  const slow = await sendToSink(toSink, randomBytes(1_000_000)); // 400 ms + 20
  p1.setLink({ bandwidthBps: 80e6 });
  const fast = await sendToSink(toSink, randomBytes(2_000_000)); // 200 ms + 20
  t.diagnostic(`1 MB at 20 Mbit/s: ${slow.ms.toFixed(0)} ms; 2 MB after set 80 Mbit/s: ${fast.ms.toFixed(0)} ms`);
  assert.ok(Math.abs(slow.ms - 420) <= 42, `slow ${slow.ms.toFixed(0)}`);
  // 2 MB in ~220 ms: 80 Mbit/s (at the old 20 Mbit/s it would take 820 ms). Short transfers are noisier on a busy machine.
  assert.ok(fast.ms >= 215 && fast.ms <= 220 * 1.25, `fast ${fast.ms.toFixed(0)}`);
  assert.equal(p1.stats().bandwidthBps, 80e6);

  const { proxy: p2, address: toEcho } = await startProxy(t, echo.address, { bandwidthBps: 100e6, rttMs: 20 });
  const s = await connect(toEcho);
  t.after(() => s.destroy());
  const before = median(await pingRtts(s, 5));
  p2.setLink({ rttMs: 100 });
  const after = median(await pingRtts(s, 5));
  t.diagnostic(`rtt 20 → 100 ms: measured ${before.toFixed(1)} → ${after.toFixed(1)} ms`);
  assert.ok(before >= 19 && before <= 30);
  assert.ok(after >= 99 && after <= 115);
});

test('(f) data integrity both directions at once, with many small and large writes, over tcp and unix sockets', async (t) => {
  const dir = tempDir(t);
  for (const kind of ['tcp', 'unix'] as const) {
    const echo = await echoServer(t, kind === 'unix' ? { kind: 'unix', path: join(dir, 'echo.sock') } : LOOP);
    const at: Address = kind === 'unix' ? { kind: 'unix', path: join(dir, 'wan.sock') } : LOOP;
    const { proxy, address } = await startProxy(t, echo.address, { bandwidthBps: 400e6, rttMs: 10 }, at);
    const s = await connect(address);
    t.after(() => s.destroy());
    // Writes of every size from 1 byte to 200 KiB, 6 MB in all.
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = 0; total < 6_000_000; i++) {
      const n = i % 7 === 0 ? 1 : i % 5 === 0 ? 200 * 1024 : 1 + ((i * 7919) % 40000);
      const b = randomBytes(n);
      parts.push(b);
      total += n;
    }
    const sent = Buffer.concat(parts);
    const got = readExactly(s, sent.length);
    for (const p of parts) s.write(p);
    const back = await got;
    assert.equal(sha(back), sha(sent), `${kind}: bytes came back changed or out of order`);
    // Half-close travels too: the echo server ends after our end, and we see it.
    const ended = new Promise((r) => s.once('end', r));
    s.end();
    await ended;
    const st = proxy.stats();
    assert.equal(st.forward.bytesOut, sent.length);
    assert.equal(st.reverse.bytesOut, sent.length);
  }
});

test('an unreachable --to resets the client, and the proxy keeps serving', async (t) => {
  const dead = await new Promise<number>((r) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => r(port));
    });
  });
  const { proxy, address } = await startProxy(t, { kind: 'tcp', host: '127.0.0.1', port: dead }, { bandwidthBps: 100e6, rttMs: 10 });
  const s = await connect(address);
  const code = await new Promise<string | undefined>((r) => {
    let c: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (c = e.code));
    s.on('close', () => r(c));
    s.resume();
  });
  assert.equal(code, 'ECONNRESET');
  await sleep(10);
  assert.equal(proxy.stats().connections.upstreamFailed, 1);
  assert.equal(proxy.stats().connections.active, 0);
});

test('a client that dies after half-closing: the upstream is reset when the proxy finds out (its next write)', async (t) => {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    s.on('error', () => {});
  });
  const to = await listenFor(t, server);
  const { proxy, address } = await startProxy(t, to, { bandwidthBps: 100e6, rttMs: 10 });
  const s = await connect(address);
  s.end('bye');
  await sleep(30);
  const up = accepted[0]!;
  const upClosed = new Promise<string | undefined>((r) => {
    let code: string | undefined;
    up.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
    up.on('close', () => r(code));
    up.resume();
  });
  s.resetAndDestroy();
  // A half-closed socket is not read any more, so the proxy only learns of the reset when it writes
  // the upstream's answer; then it resets the upstream, which (half-closed too) notices on its next write.
  await sleep(20);
  up.write('late answer');
  const keepWriting = setInterval(() => up.writable && up.write('more'), 20);
  t.after(() => clearInterval(keepWriting));
  assert.match((await upClosed) ?? '', /^(ECONNRESET|EPIPE)$/);
  await sleep(10);
  assert.equal(proxy.stats().connections.active, 0);
});

test('a client that resets its connection makes the proxy reset the upstream side', async (t) => {
  const echo = await echoServer(t);
  const { proxy, address } = await startProxy(t, echo.address, { bandwidthBps: 100e6, rttMs: 10 });
  const s = await connect(address);
  await pingRtts(s, 1);
  const up = echo.accepted[0]!;
  const upClosed = new Promise<void>((r) => up.on('close', () => r()));
  s.resetAndDestroy();
  await upClosed;
  await sleep(10);
  assert.equal(proxy.stats().connections.active, 0);
});

test('addRoute: a second entrance reaches its own upstream over the same link (a VM\'s disks behind one WAN)', async (t) => {
  const a = await sinkServer(t);
  const b = await sinkServer(t);
  const { proxy, address } = await startProxy(t, a, { bandwidthBps: 1e9, rttMs: 2 });
  const routed = await proxy.addRoute({ kind: 'unix', path: join(tempDir(t), 'route.sock') }, b);
  const da = randomBytes(100_000);
  const db = randomBytes(70_000);
  const [ra, rb] = await Promise.all([sendToSink(address, da), sendToSink(routed, db)]);
  assert.deepEqual([ra.bytes, ra.hash], [da.length, createHash('sha256').update(da).digest('hex')]);
  assert.deepEqual([rb.bytes, rb.hash], [db.length, createHash('sha256').update(db).digest('hex')]);
  // Both connections' bytes went over the one link.
  const s = proxy.stats();
  assert.equal(s.connections.total, 2);
  assert.ok(s.forward.bytesOut >= da.length + db.length, `forward ${s.forward.bytesOut}`);
  await proxy.close();
  await assert.rejects(connect(routed), /ENOENT|ECONNREFUSED/, 'close() closes the routes too');
});
