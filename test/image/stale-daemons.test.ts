// A qemu-storage-daemon outlives a flimcd killed with SIGKILL (it runs in its
// own process group); the next start in the same state directory stops it and
// serves. A stranger's process is never signalled, and a live flimcd's daemon
// is left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { flimcdBackground } from '../helpers/cli.ts';
import { requirePeers, runOk } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { StorageDaemon } from '../../src/image/storage-daemon.ts';
import { nbdServerArg, reapStaleDaemons, recordPath, writeDaemonRecord, type DaemonRecord } from '../../src/image/stale-daemons.ts';

const silent = pino({ level: 'silent' });

/** The daemon records in a state directory. */
function records(dir: string): DaemonRecord[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => /^qsd-.*\.pid$/.test(n)).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as DaemonRecord);
}

/** Is `pid` still the daemon serving `socket`? */
function daemonRuns(pid: number, socket: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(nbdServerArg(socket));
  } catch {
    return false;
  }
}

test('flimcd export --format qcow2 killed with SIGKILL leaves its daemon running; the next export stops it and serves', async (t) => {
  if (!requirePeers(t, 'qemu-storage-daemon', 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'vm.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', img, '4M']);
  const state = `${img}.flimcd`;
  const sock = join(dir, 'export.sock');
  const args = ['export', '--image', img, '--format', 'qcow2', '--listen', `unix:${sock}`, '--json'];
  // Whatever fails, no daemon outlives the test: a killed flimcd leaves one by design.
  t.after(() => {
    for (const r of records(state)) if (daemonRuns(r.pid, r.socket)) process.kill(r.pid, 'SIGKILL');
  });

  const first = await flimcdBackground(args, /"event":"listening"/);
  t.after(() => first.child.kill('SIGKILL'));
  const [old] = records(state);
  assert.ok(old, `a daemon record in ${state}`);
  assert.equal(old.owner, first.child.pid);
  first.child.kill('SIGKILL');
  await first.exited;
  assert.ok(daemonRuns(old.pid, old.socket), 'the daemon outlived its flimcd (and still holds the image)');
  t.after(() => {
    if (daemonRuns(old.pid, old.socket)) process.kill(old.pid, 'SIGKILL');
  });

  const second = await flimcdBackground(args, /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'warn' } });
  t.after(() => second.child.kill('SIGKILL'));
  assert.ok(!daemonRuns(old.pid, old.socket), 'the stale daemon was stopped');
  assert.ok(!existsSync(old.socket) && !existsSync(recordPath(old.socket)), 'its socket and record are gone');
  const now = records(state);
  assert.equal(now.length, 1);
  assert.equal(now[0]!.owner, second.child.pid);
  // It serves: a real client writes and reads back through the new daemon.
  const uri = JSON.parse(second.line).uri as string;
  await runOk('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x5a 1M 64k', '-c', 'read -P 0x5a 1M 64k']);
  assert.match(second.output().stderr, /stopping a qemu-storage-daemon left running by a flimcd that died/);

  second.child.kill('SIGTERM');
  const r = await second.exited;
  assert.equal(r.code, 143, r.stderr);
  assert.deepEqual(records(state), [], 'a clean stop removes its record');
  assert.ok(!daemonRuns(now[0]!.pid, now[0]!.socket));
});

test('a record whose pid runs something else (a stranger) only loses its files; the process is never signalled', async (t) => {
  const dir = tempDir(t);
  const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => stranger.kill('SIGKILL'));
  await new Promise((r) => stranger.once('spawn', r));
  const socket = join(dir, 'qsd-1-00000000.sock');
  writeFileSync(socket, '');
  // Its owner "died" (no such parent), but its command line holds no daemon socket of ours.
  writeDaemonRecord({ pid: stranger.pid!, owner: 2 ** 22 + 1, socket, file: join(dir, 'vm.qcow2') });
  assert.deepEqual(await reapStaleDaemons(dir, silent, { graceMs: 200 }), []);
  assert.equal(stranger.exitCode, null);
  assert.equal(stranger.signalCode, null);
  assert.ok(readFileSync(`/proc/${stranger.pid}/cmdline`, 'utf8').startsWith('sleep'), 'the stranger still runs');
  assert.ok(!existsSync(recordPath(socket)) && !existsSync(socket), 'the stale record and socket are gone');
});

test('the daemon of a running flimcd in the same state directory is left alone', async (t) => {
  if (!requirePeers(t, 'qemu-storage-daemon', 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'vm.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', img, '1M']);
  const daemon = await StorageDaemon.start({ file: img, format: 'qcow2', writable: false, socketDir: dir, log: silent });
  t.after(() => daemon.stop());
  const [rec] = records(dir);
  assert.equal(rec?.pid, daemon.pid);
  assert.equal(rec!.owner, process.pid);
  assert.deepEqual(await reapStaleDaemons(dir, silent, { graceMs: 200 }), []);
  assert.ok(daemonRuns(daemon.pid!, daemon.socketPath), 'still serving');
  await daemon.stop();
  await until(() => records(dir).length === 0, 2000, 'the record removed on stop');
});
