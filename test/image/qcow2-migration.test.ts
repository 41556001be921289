/**
 * qcow2 images and backing chains through real QEMU tools (issue 19): the
 * source opens an overlay through a supervised qemu-storage-daemon, the target
 * writes into a new overlay on its own copy of the base (--backing), and what
 * the backing chain serves is sent only when the target's base differs.
 */
import { test, type TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { startAgentPair } from '../../src/demo/agent-pair.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { log } from '../../src/util/log.ts';
import { tempDir } from '../helpers/tmp.ts';
import { FLIMCD_BIN } from '../helpers/cli.ts';
import { requirePeers, run, runOk } from '../helpers/peers.ts';
import { makeQcow2Chain } from '../helpers/qcow2-chain.ts';

const BS = 65536;
const MiB = 1024 * 1024;

const chain = (dir: string, sizeMiB: number, top: number[]) => makeQcow2Chain(dir, sizeMiB * MiB, top, BS);

async function migrate(dir: string, overlay: string, targetBase: string, during?: (nbdSocket: string) => Promise<void>) {
  const pair = await startAgentPair({
    sourceImage: overlay, targetImage: join(dir, 'target.qcow2'), dir, algorithm: 'flimcd', blockSize: BS, bandwidthBps: 200e6, rttMs: 2,
    security: { mode: 'insecure' }, log: log.child({ test: 'qcow2' }),
    source: { format: 'qcow2' }, target: { backing: { file: targetBase, format: 'qcow2' } },
  });
  try {
    const migrating = pair.source.migrate();
    await during?.(join(dir, 'source.sock'));
    const report = await migrating;
    return report;
  } finally {
    await pair.close();
  }
}

test('a qcow2 overlay migrates as an overlay: the target holds the base, only the top crosses the link, the VM writing meanwhile', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const top = [3, 4, 5, 20, 40, 41];
  const { base, overlay } = await chain(dir, 8, top);
  const targetBase = join(dir, 'target-base.qcow2');
  await runOk('cp', [base, targetBase]);
  const report = await migrate(dir, overlay, targetBase, async (sock) => {
    // The VM writes through the source's export during the migration: into a from-backing block and a new one.
    const vm = await NbdClient.connect({ kind: 'unix', path: sock });
    await vm.write(10 * BS, randomBytes(BS));
    await vm.write(60 * BS + 4096, randomBytes(8192));
    await vm.flush();
    await vm.close();
  });
  assert.equal(report.verified, true);
  const target = join(dir, 'target.qcow2');
  await runOk('qemu-img', ['check', target]);
  await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', overlay, target]);
  const info = JSON.parse((await runOk('qemu-img', ['info', '--output=json', target])).stdout) as { 'backing-filename'?: string };
  assert.equal(info['backing-filename'], targetBase);
  // 128 blocks: 6 top + 2 written are data, the rest came from the backing chain.
  assert.ok(report.blocks.from_backing >= 128 - 8 - 2, `from_backing ${report.blocks.from_backing}`);
  assert.ok(report.blocks.sent_data <= 8 + 2, `sent ${report.blocks.sent_data}`);
  // Random data does not compress: the wire carries about the overlay's data, not the 8 MiB disk.
  const overlayData = 8 * BS;
  t.diagnostic(`wire ${report.wire_bytes} B, data ${report.blocks.sent_data} blocks, from_backing ${report.blocks.from_backing} blocks, overlay data ${overlayData} B`);
  assert.ok(report.wire_bytes < overlayData * 1.3 + 64 * 1024, `wire ${report.wire_bytes} for ${overlayData} bytes of overlay data`);
});

test('a target whose base differs in some blocks receives exactly those blocks, and the result is byte-exact', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const top = [1, 2];
  const { base, overlay } = await chain(dir, 4, top);
  const targetBase = join(dir, 'target-base.qcow2');
  await runOk('cp', [base, targetBase]);
  const differ = [30, 31, 50];
  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, randomBytes(BS));
  for (const b of differ) await runOk('qemu-io', ['-f', 'qcow2', '-c', `write -s ${junk} ${b * BS} ${BS}`, targetBase]);
  const report = await migrate(dir, overlay, targetBase);
  assert.equal(report.verified, true);
  assert.equal(report.blocks.from_backing, 0);
  assert.equal(report.blocks.sent_data, top.length + differ.length);
  await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', overlay, join(dir, 'target.qcow2')]);
  await runOk('qemu-img', ['check', join(dir, 'target.qcow2')]);
});

test('bad qcow2 input is a clear one-line error (exit 2) before anything is migrated', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const orphan = join(dir, 'orphan.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', join(dir, 'gone.qcow2'), '-F', 'qcow2', orphan, '4M']);
  const corrupt = join(dir, 'corrupt.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', corrupt, '4M']);
  await runOk('dd', ['if=/dev/urandom', `of=${corrupt}`, 'bs=1', 'seek=4', 'count=4', 'conv=notrunc']);
  const good = join(dir, 'good.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', good, '4M']);
  const cli = (args: string[]) => run(process.execPath, [FLIMCD_BIN, 'source', '--to', 'tcp:127.0.0.1:9', '--insecure', '--nbd', `unix:${join(dir, 's.sock')}`, ...args], { env: { ...process.env, FLIMCD_LOG_LEVEL: 'silent' } });
  const missing = await cli(['--image', orphan, '--format', 'qcow2']);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /orphan\.qcow2 cannot be opened as qcow2: .*gone\.qcow2.*No such file/);
  const bad = await cli(['--image', corrupt, '--format', 'qcow2']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /corrupt\.qcow2 cannot be opened as qcow2/);
  const noDaemon = await cli(['--image', good, '--format', 'qcow2', '--storage-daemon', join(dir, 'no-such-qsd')]);
  assert.equal(noDaemon.code, 2, noDaemon.stderr);
  assert.match(noDaemon.stderr, /no-such-qsd, which was not found/);
  assert.equal(noDaemon.stderr.trim().split('\n').length, 1, noDaemon.stderr);
});

/** Migrates an NBD export (a URI as --image) to a raw file and checks the copy against `expected`. */
async function migrateUri(t: TestContext, dir: string, uri: string, expected: string, format: string) {
  mkdirSync(dir, { recursive: true });
  const target = join(dir, 'target.img');
  const pair = await startAgentPair({
    sourceImage: uri, targetImage: target, dir, algorithm: 'flimcd', blockSize: BS, bandwidthBps: 200e6, rttMs: 2,
    security: { mode: 'insecure' }, log: log.child({ test: 'nbd-uri' }), source: { stateDir: join(dir, 'source-state') },
  });
  try {
    const report = await pair.source.migrate();
    assert.equal(report.verified, true);
  } finally {
    await pair.close();
  }
  await runOk('qemu-img', ['compare', '-f', format, '-F', 'raw', expected, target]);
  t.diagnostic(`${uri} migrated`);
}

test('an NBD URI source: qcow2 served by qemu-nbd, raw served by nbdkit', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-nbd', 'nbdkit')) return;
  const dir = tempDir(t);
  const { overlay } = await chain(dir, 2, [0, 7]);
  const qsock = join(dir, 'qemu-nbd.sock');
  const qemuNbd = spawn('qemu-nbd', ['-f', 'qcow2', '-k', qsock, '-x', 'vm', overlay], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !existsSync(qsock); i++) await new Promise((r) => setTimeout(r, 50));
    await migrateUri(t, join(dir, 'a'), `nbd+unix:///vm?socket=${qsock}`, overlay, 'qcow2');
  } finally {
    qemuNbd.kill();
  }
  const raw = join(dir, 'base.raw');
  const ksock = join(dir, 'nbdkit.sock');
  const nbdkit = spawn('nbdkit', ['-f', '-U', ksock, 'file', raw], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !existsSync(ksock); i++) await new Promise((r) => setTimeout(r, 50));
    await migrateUri(t, join(dir, 'b'), `nbd+unix:///?socket=${ksock}`, raw, 'raw');
  } finally {
    nbdkit.kill();
  }
});

/** The pid of this process's qemu-storage-daemon child whose command line names `needle` (its socket's directory). */
function daemonPid(needle: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (ppid === process.pid && cmd.startsWith('qemu-storage-daemon') && cmd.includes(needle)) return Number(d);
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

test('qemu-storage-daemon killed mid-migration: a clear error with its code, the source image intact', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const { overlay } = await chain(dir, 1, []);
  // A top layer of 4 MiB of random data: at 8 Mbit/s the migration takes seconds.
  const data = join(dir, 'big.bin');
  writeFileSync(data, randomBytes(4 * MiB));
  await runOk('qemu-img', ['resize', '-q', '-f', 'qcow2', overlay, '8M']);
  await runOk('qemu-io', ['-f', 'qcow2', '-c', `write -s ${data} 1M 4M`, overlay]);
  const before = join(dir, 'before.qcow2');
  await runOk('cp', [overlay, before]);
  const pair = await startAgentPair({
    sourceImage: overlay, targetImage: join(dir, 'target.img'), dir, algorithm: 'flimcd', blockSize: BS, bandwidthBps: 8e6, rttMs: 2,
    security: { mode: 'insecure' }, log: log.child({ test: 'qsd-killed' }), source: { format: 'qcow2' },
  });
  try {
    const migrating = pair.source.migrate();
    migrating.catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    const pid = daemonPid(`${overlay}.flimcd`);
    assert.ok(pid, 'the source\'s qemu-storage-daemon runs');
    process.kill(pid, 'SIGKILL');
    await assert.rejects(migrating, (e: Error & { code?: string }) => {
      assert.equal(e.code, 'FLIMCD_ERR_STORAGE_DAEMON', e.message);
      assert.match(e.message, /qemu-storage-daemon \(pid \d+\) serving .*vm\.qcow2 was killed by SIGKILL/);
      return true;
    });
  } finally {
    await pair.close();
  }
  await runOk('qemu-img', ['check', overlay]);
  await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', before, overlay]);
});
