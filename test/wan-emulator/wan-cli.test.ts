// `flimcd wan` as an operator uses it, and its JSON control endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { echoServer } from '../helpers/net.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { startControlServer } from '../../src/wan-emulator/control.ts';
import { controlRequest, ControlResponseError } from '../../src/control/client.ts';
import { parseAddress } from '../../src/util/address.ts';
import type { WanStats } from '../../src/wan-emulator/proxy.ts';

/** The endpoint refused with this status and a message matching `message`. */
const refused = (status: number, message: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ControlResponseError, String(e));
  assert.equal(e.status, status, e.message);
  assert.match(e.message, message);
  return true;
};

function connectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function ping(s: net.Socket): Promise<number> {
  const t0 = performance.now();
  s.write('ping');
  await new Promise<void>((r) => {
    let n = 0;
    const f = (d: Buffer) => {
      n += d.length;
      if (n >= 4) {
        s.off('data', f);
        r();
      }
    };
    s.on('data', f);
  });
  return performance.now() - t0;
}

test('wan --help explains the options, the control endpoint and gives examples', async () => {
  const r = await flimcd(['wan', '--help']);
  assert.equal(r.code, 0);
  for (const x of ['--listen <addr>', '--to <addr>', '--bandwidth <rate>', '--rtt <duration>', '--control <addr>', '--json', 'POST /cut', 'Examples:', '100Mbit']) {
    assert.ok(r.stdout.includes(x), `help lacks ${x}`);
  }
  assert.match((await flimcd(['--help'])).stdout, /wan/);
});

test('wan: bad input gets a clear error and exit code 2', async (t) => {
  const dir = tempDir(t);
  const base = ['wan', '--listen', `unix:${join(dir, 'a')}`, '--to', `unix:${join(dir, 'b')}`];
  const cases: Array<[string[], RegExp]> = [
    [['wan', '--listen', 'tcp:127.0.0.1:0', '--bandwidth', '1Gbit', '--rtt', '1ms'], /--to/],
    [[...base, '--bandwidth', 'fast', '--rtt', '10ms'], /--bandwidth: cannot read "fast"/],
    [[...base, '--bandwidth', '0Mbit', '--rtt', '10ms'], /--bandwidth.*positive/],
    [[...base, '--bandwidth', '1kbit', '--rtt', '10ms'], /--bandwidth.*minimum/],
    [[...base, '--bandwidth', '1Gbit', '--rtt', 'soon'], /--rtt: cannot read "soon"/],
    [[...base, '--bandwidth', '1Gbit', '--rtt', '2h'], /--rtt.*more than/],
    [[...base, '--bandwidth', '1Gbit'], /--rtt/],
    [[...base, '--bandwidth', '1Gbit', '--rtt', '10ms', '--queue', 'lots'], /--queue/],
    [[...base, '--bandwidth', '1Gbit', '--rtt', '10ms', '--control', 'tcp:0.0.0.0:9999'], /--control.*not a loopback/],
    [['wan', '--listen', 'http://x', '--to', 'tcp:127.0.0.1:1', '--bandwidth', '1Gbit', '--rtt', '1ms'], /--listen.*unix: or tcp:/],
    [['wan', '--listen', 'tcp:127.0.0.1:7000', '--to', 'tcp:127.0.0.1:7000', '--bandwidth', '1Gbit', '--rtt', '1ms'], /same address/],
  ];
  for (const [args, re] of cases) {
    const r = await flimcd(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('wan runs as a process: json ready line, delay applied, control endpoint, graceful SIGTERM', async (t) => {
  const dir = tempDir(t);
  const echo = join(dir, 'echo.sock');
  const ctl = join(dir, 'ctl.sock');
  const wan = join(dir, 'wan.sock');
  await echoServer(t, { kind: 'unix', path: echo });
  const { child, line, exited } = await flimcdBackground(
    ['wan', '--listen', `unix:${wan}`, '--to', `unix:${echo}`, '--bandwidth', '100Mbit', '--rtt', '30ms', '--control', `unix:${ctl}`, '--json'],
    /"event":"listening"/,
  );
  t.after(() => child.kill('SIGKILL'));
  const ev = JSON.parse(line);
  assert.deepEqual(
    { ...ev, queueBytes: typeof ev.queueBytes },
    { event: 'listening', address: `unix:${wan}`, to: `unix:${echo}`, bandwidthBps: 100e6, rttMs: 30, queueBytes: 'number', control: `unix:${ctl}` },
  );
  const c = parseAddress(`unix:${ctl}`);
  const s = await connectUnix(wan);
  s.on('error', () => {});
  const rtts = [await ping(s), await ping(s), await ping(s)];
  assert.ok(Math.min(...rtts) >= 29 && Math.min(...rtts) < 45, `rtt ${rtts.map((x) => x.toFixed(1))}`);

  let st = await controlRequest<WanStats>(c, 'GET', '/stats');
  assert.equal(st.connections.active, 1);
  assert.equal(st.forward.bytesOut, 12);
  assert.equal(st.reverse.bytesOut, 12);

  assert.deepEqual(await controlRequest(c, 'POST', '/set', { rtt: '80ms', bandwidth: '50Mbit' }), { ok: true, bandwidthBps: 50e6, rttMs: 80 });
  const slow = await ping(s);
  assert.ok(slow >= 79 && slow < 100, `rtt after set: ${slow.toFixed(1)}`);

  assert.deepEqual(await controlRequest(c, 'POST', '/stall', { duration: '150ms' }), { ok: true, ms: 150 });
  const stalled = await ping(s);
  assert.ok(stalled >= 150, `ping across a stall: ${stalled.toFixed(1)}`);

  const closed = new Promise((r) => s.on('close', r));
  assert.deepEqual(await controlRequest(c, 'POST', '/cut', { refuse: '300ms' }), { ok: true, connections: 1, refuseMs: 300 });
  await closed;
  await assert.rejects(connectUnix(wan), /ENOENT|ECONNREFUSED/);
  await new Promise((r) => setTimeout(r, 400));
  const again = await connectUnix(wan);
  again.on('error', () => {});
  assert.ok((await ping(again)) >= 79);

  await assert.rejects(controlRequest(c, 'POST', '/set', { bandwidth: 'lots' }), refused(400, /^bandwidth: cannot read "lots"/));
  await assert.rejects(controlRequest(c, 'POST', '/stall', {}), refused(400, /^stall needs/));
  await assert.rejects(controlRequest(c, 'GET', '/cut'), refused(405, /GET not allowed on \/cut/));
  await assert.rejects(controlRequest(c, 'GET', '/nope'), refused(404, /no such endpoint \/nope/));
  st = await controlRequest<WanStats>(c, 'GET', '/stats');
  assert.equal(st.connections.cut, 1);
  assert.equal(st.connections.total, 2);

  child.kill('SIGTERM');
  const r = await exited;
  assert.equal(r.code, 0, r.stderr);
  const stopped = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(stopped.event, 'stopped');
  assert.equal(stopped.signal, 'SIGTERM');
  assert.equal(stopped.stats.connections.total, 2);
  again.destroy();
});

test('wan prints one human line when ready and exits cleanly on SIGINT', async (t) => {
  const dir = tempDir(t);
  const { child, line, exited } = await flimcdBackground(
    ['wan', '--listen', 'tcp:127.0.0.1:0', '--to', `unix:${join(dir, 'x.sock')}`, '--bandwidth', '1Gbit', '--rtt', '50ms'],
    /WAN link/,
  );
  t.after(() => child.kill('SIGKILL'));
  assert.match(line, /^flimcd: WAN link tcp:127\.0\.0\.1:\d+ -> unix:.*x\.sock: 1\.0 Gbit\/s each way, 50 ms RTT, queue /);
  child.kill('SIGINT');
  const r = await exited;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stopped; forwarded 0 B forward/);
});

test('control endpoint in-process: numbers or human units, validation, loopback only', async (t) => {
  const dir = tempDir(t);
  const proxy = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: { kind: 'unix', path: join(dir, 'none') }, bandwidthBps: 1e6, rttMs: 1 });
  await proxy.listen();
  t.after(() => proxy.close());
  const server = await startControlServer(proxy, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const a = server.address;
  assert.deepEqual(await controlRequest(a, 'POST', '/set', { bandwidthBps: 2e6, rttMs: 7 }), { ok: true, bandwidthBps: 2e6, rttMs: 7 });
  assert.deepEqual(await controlRequest(a, 'POST', '/set', { rtt: '9ms' }), { ok: true, bandwidthBps: 2e6, rttMs: 9 });
  assert.deepEqual(await controlRequest(a, 'POST', '/stall', { ms: 5 }), { ok: true, ms: 5 });
  assert.deepEqual(await controlRequest(a, 'POST', '/cut'), { ok: true, connections: 0, refuseMs: 0 });
  await assert.rejects(controlRequest(a, 'POST', '/set', { bandwidthBps: 1, bandwidth: '1Mbit' }), refused(400, /^give either/));
  await assert.rejects(controlRequest(a, 'POST', '/set', {}), refused(400, /^set needs/));
  await assert.rejects(controlRequest(a, 'POST', '/set', { bandwidthBps: -5 }), refused(400, /^bandwidthBps must be/));
  await assert.rejects(controlRequest(a, 'POST', '/cut', { refuseMs: 'x' }), refused(400, /^refuseMs must be/));
  await assert.rejects(controlRequest(a, 'POST', '/stall', [1]), refused(400, /^request body must be a JSON object/));
  const st = await controlRequest<WanStats>(a, 'GET', '/stats');
  assert.equal(st.rttMs, 9);
  assert.equal(st.bandwidthBps, 2e6);
  assert.throws(() => startControlServer(proxy, { kind: 'tcp', host: '10.1.2.3', port: 1 }), /not a loopback address/);
});

test('rates as operators write them: upper-case prefixes, bits or bytes', async () => {
  const { parseBitRate } = await import('../../src/util/units.ts');
  assert.equal(parseBitRate('100Mbit'), 100e6);
  assert.equal(parseBitRate('1Gbit'), 1e9);
  assert.equal(parseBitRate('1gbit'), 1e9);
  assert.equal(parseBitRate('12.5MB/s'), 100e6);
  assert.equal(parseBitRate('500kbit'), 500e3);
  assert.equal(parseBitRate('1Mibit'), 1024 * 1024);
  assert.throws(() => parseBitRate('0Mbit', '--bandwidth'), /--bandwidth: "0Mbit" must be a positive rate/);
  assert.throws(() => parseBitRate('fast', '--bandwidth'), /cannot read "fast"/);
});
