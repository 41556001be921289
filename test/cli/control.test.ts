// flimcd status / cutover / abort against an in-process ControlServer, as an operator runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ControlServer } from '../../src/control/server.ts';
import type { AgentControl } from '../../src/control/types.ts';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

class FakeAgent implements AgentControl {
  role: 'source' | 'target' = 'source';
  statusCalls = 0;
  st: Record<string, unknown> = { phase: 'precopy', round: 3, blocks: 2000, blockSize: 65536, remainingBlocks: 500, wireBytes: 3 * 1024 ** 3, linkRateBps: 94e6, rttMs: 40, elapsedMs: 61_000, counts: { dataBlocks: 1500, zeroBlocks: 20 } };
  /** Called on each status read, to script a migration's course. */
  script: ((n: number) => void) | undefined;
  cutovers = 0;
  aborts: string[] = [];
  status() {
    this.statusCalls++;
    this.script?.(this.statusCalls);
    return this.st;
  }
  cutover() {
    this.cutovers++;
  }
  abort(reason: string) {
    this.aborts.push(reason);
  }
}

async function serve(t: TestCtx, agent: AgentControl, dir?: string) {
  const server = new ControlServer({ control: agent, address: dir ? { kind: 'unix', path: join(dir, 'ctl.sock') } : { kind: 'tcp', host: '127.0.0.1', port: 0 } });
  const a = await server.listen();
  t.after(() => server.close());
  return { server, ctl: a.kind === 'unix' ? `unix:${a.path}` : `tcp:127.0.0.1:${a.port}` };
}

test('status --json prints the agent status with progress and ETA', async (t) => {
  const agent = new FakeAgent();
  const { ctl } = await serve(t, agent, tempDir(t));
  const r = await flimcd(['status', '--control', ctl, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.role, 'source');
  assert.equal(s.phase, 'precopy');
  assert.equal(s.progress, 0.75);
  assert.equal(s.remainingBlocks, 500);
  assert.equal(s.etaSeconds, Math.round(((500 * 65536 * 8) / 94e6) * 10) / 10);
  assert.equal(r.stdout.trim().split('\n').length, 1);
});

test('status prints a readable summary with units', async (t) => {
  const agent = new FakeAgent();
  const { ctl } = await serve(t, agent); // tcp loopback
  const r = await flimcd(['status', '--control', ctl]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^role +source$/m);
  assert.match(r.stdout, /^phase +precopy \(round 3\)$/m);
  assert.match(r.stdout, /^progress +75\.0 %$/m);
  assert.match(r.stdout, /^remaining +500 blocks, 31\.3 MiB of 2,000$/m);
  assert.match(r.stdout, /^rate +94\.0 Mbit\/s link, RTT 40\.0 ms$/m);
  assert.match(r.stdout, /^eta +3 s$/m);
  assert.match(r.stdout, /^wire +3\.00 GiB$/m);
  assert.match(r.stdout, /^elapsed +1m01s$/m);
  assert.match(r.stdout, /^counts +data 1,500, zero 20$/m);
});

test('status --watch refreshes until done (exit 0) or failed (exit 1)', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  agent.script = (n) => {
    if (n === 2) agent.st = { ...agent.st, phase: 'postcopy', remainingBlocks: 100 };
    if (n >= 3) agent.st = { ...agent.st, phase: 'done', remainingBlocks: 0 };
  };
  const { ctl } = await serve(t, agent, dir);
  const r = await flimcd(['status', '--control', ctl, '--watch', '100ms', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.phase), ['precopy', 'postcopy', 'done']);
  assert.equal(lines[2].progress, 1);

  agent.statusCalls = 0;
  agent.st = new FakeAgent().st;
  agent.script = (n) => {
    if (n >= 2) agent.st = { ...agent.st, phase: 'failed' };
  };
  const human = await flimcd(['status', '--control', ctl, '--watch', '100ms']);
  assert.equal(human.code, 1);
  const hl = human.stdout.trim().split('\n');
  assert.equal(hl.length, 2);
  assert.match(hl[0]!, /^\d{4}-\d\d-\d\dT\S+ source precopy 75\.0 % \| 500 blocks, 31\.3 MiB left \| [\d.]+ \w*bit\/s \| ETA 3 s \| wire 3\.00 GiB$/);
  assert.match(hl[1]!, /source failed/);
});

test('status --watch exits 1 with a clear message when the agent goes away mid-migration', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { server, ctl } = await serve(t, agent, dir);
  agent.script = (n) => {
    if (n === 2) setImmediate(() => void server.close());
  };
  const r = await flimcd(['status', '--control', ctl, '--watch', '100ms', '--json']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the agent at unix:\S+ctl\.sock stopped answering during phase precopy/);
  assert.equal(r.stdout.trim().split('\n').length, 2);
});

test('cutover exits 0 when accepted, 1 with the agent\'s reason when refused', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { ctl } = await serve(t, agent, dir);
  const ok = await flimcd(['cutover', '--control', ctl]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /cut-over accepted by the agent at unix:.*ctl\.sock \(it was in phase precopy\)/);
  assert.equal(agent.cutovers, 1);
  const okJson = await flimcd(['cutover', '--control', ctl, '--json']);
  assert.deepEqual(JSON.parse(okJson.stdout), { accepted: true, phase: 'precopy' });

  agent.st = { ...agent.st, phase: 'postcopy' };
  const late = await flimcd(['cutover', '--control', ctl]);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /cannot cut over: the migration is already past cut-over \(phase postcopy\)/);
  assert.equal(agent.cutovers, 2);

  const target = new FakeAgent();
  target.role = 'target';
  const tdir = tempDir(t);
  const tserver = new ControlServer({ control: { role: 'target', status: () => target.status(), abort: (r) => target.abort(r) }, address: { kind: 'unix', path: join(tdir, 't.sock') } });
  await tserver.listen();
  t.after(() => tserver.close());
  const tr = await flimcd(['cutover', '--control', `unix:${join(tdir, 't.sock')}`]);
  assert.equal(tr.code, 1);
  assert.match(tr.stderr, /the target agent cannot cut over; ask the source agent/);
});

test('abort passes the reason; refused once finished', async (t) => {
  const dir = tempDir(t);
  const agent = new FakeAgent();
  const { ctl } = await serve(t, agent, dir);
  const r = await flimcd(['abort', '--control', ctl, '--reason', 'maintenance window over']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /abort accepted .* in phase precopy \(reason: maintenance window over\)/);
  assert.deepEqual(agent.aborts, ['maintenance window over']);
  const j = await flimcd(['abort', '--control', ctl, '--json']);
  assert.equal(JSON.parse(j.stdout).reason, 'requested through the control endpoint');
  agent.st = { ...agent.st, phase: 'done' };
  const done = await flimcd(['abort', '--control', ctl]);
  assert.equal(done.code, 1);
  assert.match(done.stderr, /nothing to abort: the migration is already done/);
});

test('--help has examples; bad input exits 2; an unreachable agent exits 1', async (t) => {
  for (const cmd of ['status', 'cutover', 'abort']) {
    const h = await flimcd([cmd, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--control <addr>/);
    assert.match(h.stdout, /Examples:\n {2}flimcd /);
    const bad = await flimcd([cmd, '--control', 'http://localhost:80']);
    assert.equal(bad.code, 2, cmd);
    assert.match(bad.stderr, /--control: "http:\/\/localhost:80" must start with unix: or tcp:/);
    const missing = await flimcd([cmd]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--control/);
  }
  const top = await flimcd(['--help']);
  assert.match(top.stdout, /status/);
  assert.match(top.stdout, /cutover/);
  assert.match(top.stdout, /abort/);
  const dir = tempDir(t);
  const sock = join(dir, 'nobody.sock');
  const w = await flimcd(['status', '--control', `unix:${sock}`, '--watch', '10ms']);
  assert.equal(w.code, 2);
  assert.match(w.stderr, /--watch: the interval must be at least 100 ms/);
  const to = await flimcd(['status', '--control', `unix:${sock}`, '--timeout', 'soon']);
  assert.equal(to.code, 2);
  const gone = await flimcd(['status', '--control', `unix:${sock}`]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, new RegExp(`no flimcd agent is listening at unix:${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(ENOENT: no such socket\\)`));
  const cut = await flimcd(['cutover', '--control', `unix:${sock}`]);
  assert.equal(cut.code, 1);
});
