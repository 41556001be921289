// `flimcd vm migrate` as an operator runs it: help, bad input, an unreachable QEMU.
// (The whole flow with real QEMU guests is in test/vm/vm-migrate.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

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
