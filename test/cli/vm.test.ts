// `flimcd vm migrate` as an operator runs it: help, bad input, an unreachable QEMU.
// (The whole flow with real QEMU guests is in test/vm/vm-migrate.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import http from 'node:http';
import { flimcd, flimcdSpawn } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import type { TestCtx } from '../helpers/test-context.ts';
import { formatVmResult } from '../../src/cli/commands/vm.ts';
import type { VmMigrationResult } from '../../src/qemu/vm-migrate.ts';
import { fakeQemuInState } from '../helpers/fake-qmp.ts';

const base = (dir: string) => ['vm', 'migrate', '--source-control', `unix:${join(dir, 's.ctl')}`, '--target-control', `unix:${join(dir, 't.ctl')}`, '--incoming', 'tcp:127.0.0.1:4444'];

test('vm migrate --help explains the set-up, the QMP sequence and the exit codes', async () => {
  const r = await flimcd(['vm', 'migrate', '--help']);
  assert.equal(r.code, 0);
  for (const s of ['--source-qmp', '--target-qmp', '--source-control', '--target-control', '--incoming', '--manual-cutover', '-incoming defer', 'pause-before-switchover', 'cyls=', 'Exit codes']) assert.ok(r.stdout.includes(s), `help mentions ${s}`);
});

test('vm migrate: bad input exits 2 with a clear message', async (t) => {
  const dir = tempDir(t);
  const r = await flimcd([...base(dir), '--source-qmp', 'qemu.sock', '--target-qmp', 'unix:/x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--source-qmp: "qemu.sock" must start with unix: or tcp:/);
  const u = await flimcd([...base(dir), '--source-qmp', 'unix:/a', '--target-qmp', 'unix:/b', '--migrate-uri', 'host:4444']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--migrate-uri: "host:4444" is not a QEMU migration URI/);
});

test('vm migrate: a QMP socket that is not QEMU fails with exit 1 and says so', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'fake.qmp');
  const server = net.createServer((s) => s.end('{"not":"qmp"}\n'));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  const r = await flimcd([...base(dir), '--source-qmp', `unix:${path}`, '--target-qmp', `unix:${path}`, '--json']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /source QEMU: .*(closed|greeting)/);
});


/** An agent control endpoint that stays in pre-copy round 0 (the RAM phase never starts) and counts aborts. */
async function fakeAgent(t: TestCtx, path: string): Promise<{ aborts: number }> {
  const seen = { aborts: 0 };
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/abort') seen.aborts++;
    req.resume();
    res.writeHead(req.method === 'POST' ? 202 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.method === 'POST' ? { accepted: true, phase: 'precopy' } : { role: 'source', phase: 'precopy', round: 0, remainingBlocks: 1000, blockSize: 65536 }));
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  return seen;
}

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`vm migrate: ${signal} during pre-copy rolls back (the agents are told) and exits ${code}`, async (t) => {
    const dir = tempDir(t);
    await fakeQemuInState(t, join(dir, 'src.qmp'), 'running');
    await fakeQemuInState(t, join(dir, 'dst.qmp'), 'inmigrate');
    const src = await fakeAgent(t, join(dir, 's.ctl'));
    await fakeAgent(t, join(dir, 't.ctl'));
    const p = flimcdSpawn([...base(dir), '--source-qmp', `unix:${join(dir, 'src.qmp')}`, '--target-qmp', `unix:${join(dir, 'dst.qmp')}`, '--json']);
    t.after(() => p.child.kill('SIGKILL'));
    let out = '';
    p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('"stage":"precopy"'), 30_000, 'vm migrate never reached pre-copy');
    p.child.kill(signal);
    const r = await p.exited;
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stdout, /"event":"failed".*"vm_at":"source"/);
    assert.equal(src.aborts, 1, 'the source agent was told to abort');
  });
}

test('vm migrate --disk: several disks; bad --disk input exits 2 naming what was wrong', async () => {
  const qmp = ['vm', 'migrate', '--source-qmp', 'unix:/a', '--target-qmp', 'unix:/b', '--incoming', 'tcp:127.0.0.1:4444'];
  const cases: Array<[string[], RegExp]> = [
    [[], /give --source-control and --target-control \(one disk\), or --disk for each disk/],
    [['--disk', 'name=vda,source=unix:/s,target=unix:/t', '--source-control', 'unix:/x'], /give --disk \(one per disk\) or --source-control and --target-control \(one disk\), not both/],
    [['--disk', 'name=vda,source=unix:/s'], /--disk: "name=vda,source=unix:\/s" needs source=ADDR and target=ADDR/],
    [['--disk', 'name=vda,src=unix:/s,target=unix:/t'], /"src=unix:\/s" is not one of them/],
    [['--disk', 'name=vda,source=/s,target=unix:/t'], /--disk vda source: "\/s" must start with unix: or tcp:/],
    [['--disk', 'name=vda,source=unix:/s,target=unix:/t', '--disk', 'name=vda,source=unix:/s2,target=unix:/t2'], /two disks are named vda/],
    [['--disk', 'name=vda,source=unix:/s,target=unix:/t', '--disk', 'name=vdb,source=unix:/s,target=unix:/t2'], /disk vdb: control endpoint unix:\/s is given twice/],
  ];
  for (const [args, re] of cases) {
    const r = await flimcd([...qmp, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('vm migrate --disk ×2: SIGTERM during pre-copy rolls back both disks (every agent told) and exits 143', async (t) => {
  const dir = tempDir(t);
  await fakeQemuInState(t, join(dir, 'src.qmp'), 'running');
  await fakeQemuInState(t, join(dir, 'dst.qmp'), 'inmigrate');
  const agents = [];
  for (const n of ['vda', 'vdb']) agents.push(await fakeAgent(t, join(dir, `${n}-s.ctl`)), await fakeAgent(t, join(dir, `${n}-t.ctl`)));
  const disks = ['vda', 'vdb'].flatMap((n) => ['--disk', `name=${n},source=unix:${join(dir, `${n}-s.ctl`)},target=unix:${join(dir, `${n}-t.ctl`)}`]);
  const p = flimcdSpawn(['vm', 'migrate', '--source-qmp', `unix:${join(dir, 'src.qmp')}`, '--target-qmp', `unix:${join(dir, 'dst.qmp')}`, '--incoming', 'tcp:127.0.0.1:4444', ...disks, '--json']);
  t.after(() => p.child.kill('SIGKILL'));
  let out = '';
  p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => out.includes('"name":"vdb"'), 30_000, 'vm migrate never reported both disks');
  p.child.kill('SIGTERM');
  const r = await p.exited;
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stdout, /"event":"failed".*"vm_at":"source"/);
  assert.deepEqual(agents.map((a) => a.aborts), [1, 1, 1, 1], 'both disks\' source and target agents were told to abort');
});

test('vm migrate\'s report: the totals, then a line per disk when there are several', () => {
  const disk = (name: string, verified: boolean, receivedBytes: number, missing: number) => ({ name, disk: { phase: 'done', verified, receivedBytes }, missing_at_cutover: missing, serving_after_ms: 10, verified });
  const r: VmMigrationResult = {
    time_total_s: 12.5, time_precopy_s: 8, time_ram_s: 3, time_postcopy_s: 1.5, downtime_ms: 420, qemu_downtime_ms: 300, storage_cutover_ms: 35,
    ram: { transferred_bytes: 64 << 20, total_bytes: 128 << 20, duplicate_pages: 0, normal_pages: 0, dirty_sync_count: 2 },
    disk: { phase: 'done', verified: false }, missing_at_cutover: 7, verified: false,
    disks: [disk('vda', true, 3 << 20, 3), disk('vdb', false, 1 << 20, 4)],
    guest_io_errors: { total: 0, events: 0, failed_reads: 0, failed_writes: 0, failed_flushes: 0, source: { events: 0, failed_reads: 0, failed_writes: 0, failed_flushes: 0 }, target: { events: 0, failed_reads: 0, failed_writes: 0, failed_flushes: 0 } },
  };
  const text = formatVmResult(r);
  assert.match(text, /downtime 420 ms \(storage cut-over 35 ms\).*2 disks NOT verified, no guest I\/O error\n/);
  assert.match(text, /\n {2}disk vda: verified, 3\.00 MiB received, missing at cut-over 3 blocks\n {2}disk vdb: NOT verified, 1\.00 MiB received, missing at cut-over 4 blocks\n$/);
  const one = formatVmResult({ ...r, verified: true, disks: [disk('disk0', true, 3 << 20, 3)] });
  assert.match(one, /disk verified, no guest I\/O error\n$/);
  assert.equal(one.split('\n').length, 2, 'one disk: one line');
});
