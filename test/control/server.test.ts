// The agent control endpoint: routes, refusals, metrics exposition, limits,
// addresses, and the client's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { existsSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlServer } from '../../src/control/server.ts';
import { controlRequest, ControlResponseError, ControlUnreachableError } from '../../src/control/client.ts';
import type { AgentControl, CutoverRequest } from '../../src/control/types.ts';
import type { Address } from '../../src/util/address.ts';
import { FlimcdError, UsageError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';
import { leaveStaleSocket } from '../helpers/net.ts';
import type { TestCtx } from '../helpers/test-context.ts';

function sourceStatus(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    role: 'source',
    phase: 'precopy',
    round: 2,
    blocks: 1000,
    blockSize: 65536,
    remainingBlocks: 250,
    elapsedMs: 12_500,
    wireBytes: 123_456_789,
    linkRateBps: 95e6,
    rttMs: 50,
    counts: { dataBlocks: 700, zeroBlocks: 40, resentBlocks: 12, demandBlocks: 0, dirtyEvents: 99 },
    ...over,
  };
}

class FakeAgent implements AgentControl {
  role: 'source' | 'target' = 'source';
  st: Record<string, unknown> = sourceStatus();
  cutovers = 0;
  cutoverOpts: unknown[] = [];
  aborts: string[] = [];
  cutoverError: Error | undefined;
  status() {
    return this.st;
  }
  cutover(opts?: CutoverRequest) {
    if (this.cutoverError) throw this.cutoverError;
    this.cutovers++;
    this.cutoverOpts.push(opts);
  }
  abort(reason: string) {
    this.aborts.push(reason);
  }
}

let n = 0;
async function serve(t: TestCtx, control: AgentControl, o: { tcp?: boolean; dir?: string; maxBodyBytes?: number } = {}): Promise<{ server: ControlServer; addr: Address }> {
  const address: Address = o.tcp ? { kind: 'tcp', host: '127.0.0.1', port: 0 } : { kind: 'unix', path: join(o.dir!, `ctl-${n++}.sock`) };
  const server = new ControlServer({ control, address, ...(o.maxBodyBytes ? { maxBodyBytes: o.maxBodyBytes } : {}) });
  const addr = await server.listen();
  t.after(() => server.close());
  return { server, addr };
}

/** A raw HTTP exchange, for statuses and headers the client hides. */
function raw(addr: Address, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { ...(addr.kind === 'unix' ? { socketPath: addr.path } : { host: addr.host, port: addr.port }), method, path, agent: false, headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Parses Prometheus text exposition into samples; fails on any malformed line. */
function parseProm(text: string): { samples: Map<string, number>; types: Map<string, string>; helps: Set<string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      helps.add(m[1]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|histogram|summary|untyped)$/.exec(line);
    if (m) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `malformed exposition line: ${JSON.stringify(line)}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return { samples, types, helps };
}

test('GET /status answers the agent status as JSON, completed with progress, ETA and role', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir });
  const s = await controlRequest<Record<string, unknown>>(addr, 'GET', '/status');
  assert.equal(s.role, 'source');
  assert.equal(s.phase, 'precopy');
  assert.equal(s.progress, 0.75);
  assert.equal(s.remainingBlocks, 250);
  assert.equal(s.wireBytes, 123_456_789);
  assert.deepEqual(s.counts, { dataBlocks: 700, zeroBlocks: 40, resentBlocks: 12, demandBlocks: 0, dirtyEvents: 99 });
  // No transfer rate yet (one sample), so the ETA comes from the link rate: 250 × 64 KiB × 8 / 95 Mbit/s.
  assert.equal(s.etaSeconds, Math.round(((250 * 65536 * 8) / 95e6) * 10) / 10);
  // Fields the agent sets itself are never overwritten.
  agent.st = sourceStatus({ progress: 0.5, etaSeconds: 7 });
  const s2 = await controlRequest<Record<string, unknown>>(addr, 'GET', '/status');
  assert.equal(s2.progress, 0.5);
  assert.equal(s2.etaSeconds, 7);
});

test('transfer rate is measured between status requests', async (t) => {
  const dir = tempDir(t);
  let now = 0;
  const agent = new FakeAgent();
  const server = new ControlServer({ control: agent, address: { kind: 'unix', path: join(dir, 'c.sock') }, now: () => now });
  const addr = await server.listen();
  t.after(() => server.close());
  agent.st = sourceStatus({ wireBytes: 1_000_000 });
  await controlRequest(addr, 'GET', '/status');
  now = 2000;
  agent.st = sourceStatus({ wireBytes: 26_000_000, remainingBlocks: 100 });
  const s = await controlRequest<Record<string, unknown>>(addr, 'GET', '/status');
  assert.equal(s.transferRateBps, 100e6);
  assert.equal(s.etaSeconds, Math.round(((100 * 65536 * 8) / 100e6) * 10) / 10);
});

test('POST /cutover calls through with 202, and answers 409 when the role or phase cannot cut over', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir });
  const ok = await raw(addr, 'POST', '/cutover');
  assert.equal(ok.status, 202);
  assert.deepEqual(JSON.parse(ok.text), { accepted: true, phase: 'precopy' });
  assert.equal(agent.cutovers, 1);
  assert.deepEqual(agent.cutoverOpts, [undefined]);

  // A hypervisor that has paused the VM says so: the source holds at once.
  const paused = await raw(addr, 'POST', '/cutover', '{"vmPaused":true}', { 'content-type': 'application/json' });
  assert.equal(paused.status, 202);
  assert.deepEqual(agent.cutoverOpts, [undefined, { vmPaused: true }]);
  const bad = await raw(addr, 'POST', '/cutover', '{"vmPaused":"yes"}', { 'content-type': 'application/json' });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.text).error, /vmPaused must be true or false/);
  assert.equal(agent.cutovers, 2);

  for (const [phase, why] of [['postcopy', /already past cut-over \(phase postcopy\)/], ['cutover', /already in progress/], ['done', /past cut-over/], ['failed', /has failed/]] as const) {
    agent.st = sourceStatus({ phase });
    const r = await raw(addr, 'POST', '/cutover', '{}', { 'content-type': 'application/json' });
    assert.equal(r.status, 409, phase);
    const body = JSON.parse(r.text);
    assert.match(body.error, why);
    assert.equal(body.code, 'FLIMCD_ERR_CUTOVER_REFUSED');
    assert.equal(body.phase, phase);
  }
  assert.equal(agent.cutovers, 2);

  // The agent itself may refuse (e.g. not started yet): its message comes back as a 409.
  agent.st = sourceStatus({ phase: 'starting' });
  agent.cutoverError = new UsageError('the migration has not started yet');
  await assert.rejects(controlRequest(addr, 'POST', '/cutover'), (e: unknown) => {
    assert.ok(e instanceof ControlResponseError);
    assert.equal(e.status, 409);
    assert.match(e.message, /cannot cut over: the migration has not started yet/);
    return true;
  });
  // An unexpected error is a 500, not a refusal.
  agent.cutoverError = new TypeError('boom');
  const r500 = await raw(addr, 'POST', '/cutover');
  assert.equal(r500.status, 500);
  assert.match(JSON.parse(r500.text).error, /boom/);

  // A target agent has no cut-over at all.
  const target = await serve(t, { role: 'target', status: () => ({ phase: 'precopy', blocks: 10 }), abort: () => {} }, { dir });
  const rt = await raw(target.addr, 'POST', '/cutover');
  assert.equal(rt.status, 409);
  assert.match(JSON.parse(rt.text).error, /target agent cannot cut over; ask the source agent/);
});

test('POST /abort passes the reason (or a default), 409 once finished or (source, no reclaim) after cut-over, 400 on a bad reason', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir });
  const r = await controlRequest<Record<string, unknown>>(addr, 'POST', '/abort', { reason: 'maintenance window over' });
  assert.deepEqual(r, { accepted: true, reason: 'maintenance window over', abortedIn: 'precopy', phase: 'precopy' });
  await controlRequest(addr, 'POST', '/abort');
  assert.deepEqual(agent.aborts, ['maintenance window over', 'requested through the control endpoint']);
  const bad = await raw(addr, 'POST', '/abort', JSON.stringify({ reason: 42 }));
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.text).error, /reason must be a string/);
  // After the cut-over the source refuses: the VM runs at the target. `reclaim` (a switch-over that failed) still may.
  for (const phase of ['cutover', 'postcopy', 'verify']) {
    agent.st = sourceStatus({ phase });
    const after = await raw(addr, 'POST', '/abort', '{"reason":"too late"}');
    assert.equal(after.status, 409, phase);
    assert.match(JSON.parse(after.text).error, /VM already runs at the target.*only way forward is to let the migration finish/);
  }
  assert.equal(agent.aborts.length, 2);
  const reclaimed = await raw(addr, 'POST', '/abort', '{"reason":"switch-over failed","reclaim":true}');
  assert.equal(reclaimed.status, 202);
  agent.aborts.pop();
  agent.st = sourceStatus({ phase: 'done' });
  const done = await raw(addr, 'POST', '/abort', '{"reason":"late"}');
  assert.equal(done.status, 409);
  assert.match(JSON.parse(done.text).error, /already done/);
  assert.equal(agent.aborts.length, 2);
});

test('POST /abort answers once the agent has wound the migration down (phase idle), or after the bound with the phase meanwhile (aborting)', async (t) => {
  const dir = tempDir(t);
  let phase = 'precopy';
  let windDown: (() => void) | undefined;
  const agent: AgentControl = {
    role: 'source',
    status: () => ({ phase }),
    abort: () => {
      phase = 'aborting';
      return new Promise<void>((resolve) => {
        windDown = () => {
          phase = 'idle';
          resolve();
        };
      });
    },
  };
  const server = new ControlServer({ control: agent, address: { kind: 'unix', path: join(dir, 'w.sock') }, abortWindDownMs: 60_000 });
  const addr = await server.listen();
  t.after(() => server.close());
  let answered: Record<string, unknown> | undefined;
  const pending = controlRequest<Record<string, unknown>>(addr, 'POST', '/abort', { reason: 'rollback' }, { timeoutMs: 30_000 }).then((r) => (answered = r));
  while (!windDown) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(answered, undefined, 'no answer while the migration winds down');
  windDown();
  await pending;
  assert.deepEqual(answered, { accepted: true, reason: 'rollback', abortedIn: 'precopy', phase: 'idle' });

  // A wind-down that takes longer than the bound: answered with the phase the agent shows meanwhile.
  phase = 'precopy';
  windDown = undefined;
  const quick = new ControlServer({ control: agent, address: { kind: 'unix', path: join(dir, 'q.sock') }, abortWindDownMs: 100 });
  const qaddr = await quick.listen();
  t.after(() => quick.close());
  const late = await controlRequest<Record<string, unknown>>(qaddr, 'POST', '/abort', {}, { timeoutMs: 30_000 });
  assert.equal(late.phase, 'aborting');
  assert.equal(late.abortedIn, 'precopy');
  windDown!();
});

test('GET /metrics is Prometheus text from a per-server registry, mirroring the status', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir });
  // A second server in the same process must not collide with the first one's metrics.
  const other = await serve(t, { role: 'target', status: () => ({ phase: 'postcopy', blocks: 1000, missingBlocks: 10, readBlocks: 200, missBlocks: 5, receivedBlocks: { bulk: 900, demand: 5 }, missP50: 40, missP99: 120 }), abort: () => {} }, { dir });

  const res = await raw(addr, 'GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type']!, /^text\/plain; version=0\.0\.4/);
  const { samples, types, helps } = parseProm(res.text);
  const v = (k: string) => samples.get(k);
  assert.equal(v('flimcd_phase{phase="precopy"}'), 1);
  assert.equal(v('flimcd_phase{phase="postcopy"}'), 0);
  assert.equal(v('flimcd_phase{phase="done"}'), 0);
  assert.equal(v('flimcd_agent_info{role="source"}'), 1);
  assert.equal(v('flimcd_wire_bytes_total'), 123_456_789);
  assert.equal(types.get('flimcd_wire_bytes_total'), 'counter');
  assert.equal(v('flimcd_remaining_blocks'), 250);
  assert.equal(types.get('flimcd_remaining_blocks'), 'gauge');
  assert.equal(v('flimcd_image_blocks'), 1000);
  assert.equal(v('flimcd_block_size_bytes'), 65536);
  assert.equal(v('flimcd_precopy_round'), 2);
  assert.equal(v('flimcd_progress_ratio'), 0.75);
  assert.equal(v('flimcd_elapsed_seconds'), 12.5);
  assert.equal(v('flimcd_link_rate_bits_per_second'), 95e6);
  assert.equal(v('flimcd_rtt_seconds'), 0.05);
  assert.equal(v('flimcd_blocks_total{kind="data"}'), 700);
  assert.equal(v('flimcd_blocks_total{kind="zero"}'), 40);
  assert.equal(v('flimcd_blocks_total{kind="resent"}'), 12);
  assert.equal(types.get('flimcd_blocks_total'), 'counter');
  assert.equal(v('flimcd_dirty_events_total'), 99);
  assert.ok(v('flimcd_eta_seconds')! > 0);
  assert.ok(helps.has('flimcd_wire_bytes_total'));
  // Unknown fields still appear, generically named with units converted.
  agent.st = sourceStatus({ etaSeconds: null, stallMs: 1500, verified: true, queue: { depth: 3, nested: { peak: 9 } }, algorithm: 'flimcd' });
  const again = parseProm((await raw(addr, 'GET', '/metrics')).text).samples;
  assert.equal(again.get('flimcd_eta_seconds'), undefined, 'an unknown ETA is absent, not zero');
  assert.equal(again.get('flimcd_stall_seconds'), 1.5);
  assert.equal(again.get('flimcd_verified'), 1);
  assert.equal(again.get('flimcd_queue{key="depth"}'), 3);
  assert.equal(again.get('flimcd_queue_nested{key="peak"}'), 9);
  assert.equal(again.get('flimcd_agent_info{algorithm="flimcd",role="source"}'), 1);
  assert.equal(again.get('flimcd_agent_info{role="source"}'), undefined);

  const tgt = parseProm((await raw(other.addr, 'GET', '/metrics')).text).samples;
  assert.equal(tgt.get('flimcd_phase{phase="postcopy"}'), 1);
  assert.equal(tgt.get('flimcd_agent_info{role="target"}'), 1);
  assert.equal(tgt.get('flimcd_block_miss_rate'), 0.025);
  assert.equal(tgt.get('flimcd_missing_blocks'), 10);
  assert.equal(tgt.get('flimcd_remaining_blocks'), 10);
  assert.equal(tgt.get('flimcd_progress_ratio'), 0.99);
  assert.equal(tgt.get('flimcd_read_blocks_total'), 200);
  assert.equal(tgt.get('flimcd_miss_blocks_total'), 5);
  assert.equal(tgt.get('flimcd_received_blocks_total{reason="bulk"}'), 900);
  assert.equal(tgt.get('flimcd_miss_latency_seconds{quantile="0.5"}'), 0.04);
  assert.equal(tgt.get('flimcd_miss_latency_seconds{quantile="0.99"}'), 0.12);
  assert.equal(tgt.get('flimcd_wire_bytes_total'), undefined);
});

test('an agent can add its own metrics; a bad name is a 500', async (t) => {
  const dir = tempDir(t);
  let extra = [{ name: 'flimcd_nbd_requests_total', type: 'counter' as const, help: 'NBD requests served', labels: { op: 'read' }, value: 17 }];
  const control: AgentControl = {
    role: 'source',
    status: () => ({ algorithm: 'hybrid', ...sourceStatus() }),
    cutover: () => {},
    abort: () => {},
    metrics: () => extra,
  };
  const { addr } = await serve(t, control, { dir });
  const p = parseProm(await controlRequest<string>(addr, 'GET', '/metrics'));
  assert.equal(p.samples.get('flimcd_nbd_requests_total{op="read"}'), 17);
  assert.equal(p.types.get('flimcd_nbd_requests_total'), 'counter');
  assert.equal(p.samples.get('flimcd_agent_info{algorithm="hybrid",role="source"}'), 1);
  extra = [{ name: 'bad name', type: 'counter', help: 'x', labels: { op: 'read' }, value: 1 }];
  const r = await raw(addr, 'GET', '/metrics');
  assert.equal(r.status, 500);
  assert.match(JSON.parse(r.text).error, /invalid metric name/);
});

test('unknown routes 404, wrong methods 405 with Allow, malformed bodies 400', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir });
  const nf = await raw(addr, 'GET', '/nope');
  assert.equal(nf.status, 404);
  assert.match(nf.headers['content-type']!, /application\/json/);
  assert.match(JSON.parse(nf.text).error, /no such endpoint \/nope \(GET \/status, POST \/cutover, POST \/abort, POST \/retry, GET \/metrics\)/);
  const m1 = await raw(addr, 'POST', '/status');
  assert.equal(m1.status, 405);
  assert.equal(m1.headers.allow, 'GET');
  const m2 = await raw(addr, 'GET', '/cutover');
  assert.equal(m2.status, 405);
  assert.equal(m2.headers.allow, 'POST');
  assert.match(JSON.parse(m2.text).error, /GET not allowed on \/cutover/);
  assert.equal((await raw(addr, 'DELETE', '/abort')).status, 405);
  assert.equal(agent.cutovers, 0);
  for (const body of ['{not json', '[1,2]', '"text"', 'null']) {
    const r = await raw(addr, 'POST', '/abort', body);
    assert.equal(r.status, 400, body);
    assert.match(JSON.parse(r.text).error, /not valid JSON|must be a JSON object/);
  }
  assert.equal(agent.aborts.length, 0);
  // The query string and a trailing slash do not matter.
  assert.equal((await raw(addr, 'GET', '/status/?x=1')).status, 200);
  assert.equal((await raw(addr, 'HEAD', '/status')).status, 200);
});

test('request bodies are bounded', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { dir, maxBodyBytes: 1024 });
  const big = JSON.stringify({ reason: 'x'.repeat(4096) });
  const declared = await raw(addr, 'POST', '/abort', big);
  assert.equal(declared.status, 413);
  assert.match(JSON.parse(declared.text).error, /over 1024 bytes/);
  // Chunked, no content-length: cut off once over the limit.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request({ socketPath: (addr as { path: string }).path, method: 'POST', path: '/abort', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    for (let i = 0; i < 8; i++) req.write('x'.repeat(512));
    req.end();
  });
  assert.equal(chunked, 413);
  assert.equal(agent.aborts.length, 0);
  // The default limit is 64 KiB.
  const dflt = await serve(t, agent, { dir });
  assert.equal((await raw(dflt.addr, 'POST', '/abort', JSON.stringify({ reason: 'y'.repeat(70_000) }))).status, 413);
  assert.equal((await raw(dflt.addr, 'POST', '/abort', JSON.stringify({ reason: 'y'.repeat(60_000) }))).status, 202);
  assert.equal(agent.aborts[0]!.length, 1000, 'a long reason is truncated');
});

test('non-loopback TCP hosts are refused unless allowRemote', async (t) => {
  const control = new FakeAgent();
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
    assert.throws(() => new ControlServer({ control, address: { kind: 'tcp', host, port: 0 } }), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /not a loopback address.*no authentication/);
      return true;
    });
  }
  for (const host of ['127.0.0.1', '127.3.4.5', 'localhost', '::1']) new ControlServer({ control, address: { kind: 'tcp', host, port: 0 } });
  const remote = new ControlServer({ control, address: { kind: 'tcp', host: '0.0.0.0', port: 0 }, allowRemote: true });
  const a = await remote.listen();
  t.after(() => remote.close());
  assert.ok(a.kind === 'tcp' && a.port > 0);
  const s = await controlRequest<Record<string, unknown>>({ kind: 'tcp', host: '127.0.0.1', port: a.port }, 'GET', '/status');
  assert.equal(s.phase, 'precopy');
});

test('TCP loopback: the bound port is reported and serves every route', async (t) => {
  const agent = new FakeAgent();
  const { addr } = await serve(t, agent, { tcp: true });
  assert.ok(addr.kind === 'tcp' && addr.port > 0 && addr.host === '127.0.0.1');
  assert.equal((await controlRequest<Record<string, unknown>>(addr, 'GET', '/status')).phase, 'precopy');
  assert.match(await controlRequest<string>(addr, 'GET', '/metrics'), /flimcd_phase\{phase="precopy"\} 1/);
  assert.deepEqual(await controlRequest(`tcp:127.0.0.1:${addr.port}`, 'POST', '/cutover'), { accepted: true, phase: 'precopy' });
});

test('unix sockets: a stale socket is replaced, a live one or a regular file is not; close removes the socket', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'stale.sock');
  // A process that dies without closing leaves its socket file behind.
  await leaveStaleSocket(path);
  assert.ok(lstatSync(path).isSocket());
  const agent = new FakeAgent();
  const server = new ControlServer({ control: agent, address: { kind: 'unix', path } });
  await server.listen();
  assert.equal((await controlRequest<Record<string, unknown>>(`unix:${path}`, 'GET', '/status')).phase, 'precopy');

  // A second server at the same live socket is refused, and the first keeps serving.
  await assert.rejects(new ControlServer({ control: agent, address: { kind: 'unix', path } }).listen(), /another process is listening/);
  assert.equal((await controlRequest<Record<string, unknown>>(`unix:${path}`, 'GET', '/status')).phase, 'precopy');

  const file = join(dir, 'regular');
  writeFileSync(file, 'keep me');
  await assert.rejects(new ControlServer({ control: agent, address: { kind: 'unix', path: file } }).listen(), /exists and is not a socket/);
  assert.ok(existsSync(file));

  await server.close();
  await server.close(); // idempotent
  assert.ok(!existsSync(path));
  await assert.rejects(controlRequest(`unix:${path}`, 'GET', '/status'), (e: unknown) => {
    assert.ok(e instanceof ControlUnreachableError);
    assert.equal(e.message, `no flimcd agent is listening at unix:${path} (ENOENT: no such socket)`);
    return true;
  });
});

test('close waits for an in-flight request', async (t) => {
  const dir = tempDir(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const control: AgentControl = { role: 'source', status: async () => { await gate; return { phase: 'precopy' }; }, abort: () => {} };
  const { server, addr } = await serve(t, control, { dir });
  const pending = controlRequest<Record<string, unknown>>(addr, 'GET', '/status');
  await new Promise((r) => setTimeout(r, 50));
  let closed = false;
  const closing = server.close(5000).then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closed, false);
  release();
  assert.equal((await pending).phase, 'precopy');
  await closing;
});

test('the client times out on an agent that does not answer, and explains refused connections', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'mute.sock');
  const sockets: net.Socket[] = [];
  const mute = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => mute.listen(path, r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    mute.close();
  });
  const t0 = Date.now();
  await assert.rejects(controlRequest(`unix:${path}`, 'GET', '/status', undefined, { timeoutMs: 200 }), (e: unknown) => {
    assert.ok(e instanceof ControlUnreachableError);
    assert.match(e.message, /did not answer GET \/status within 200 ms/);
    return true;
  });
  assert.ok(Date.now() - t0 < 2000);

  // A TCP port nobody listens on.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await assert.rejects(controlRequest(`tcp:127.0.0.1:${port}`, 'GET', '/status'), /no flimcd agent is listening at tcp:127\.0\.0\.1:\d+ \(ECONNREFUSED: connection refused\)/);
  await assert.rejects(controlRequest('http://x', 'GET', '/status'), (e: unknown) => e instanceof UsageError);
  assert.ok(new ControlUnreachableError('x', undefined) instanceof FlimcdError);
});
