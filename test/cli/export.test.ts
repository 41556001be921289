// The `flimcd export` command as an operator uses it: help, clear errors with
// exit code 2, a real client writing through it, and a graceful SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { requirePeers, runOk } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';

test('flimcd --help and export --help describe the command', async () => {
  const top = await flimcd(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /export/);
  const r = await flimcd(['export', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--image <image>/);
  assert.match(r.stdout, /--listen <addr>/);
  assert.match(r.stdout, /--read-only/);
});

test('bad input gets a clear error and exit code 2', async (t) => {
  const dir = tempDir(t);
  const missing = await flimcd(['export', '--listen', `unix:${join(dir, 's')}`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--image/);
  const nofile = await flimcd(['export', '--image', join(dir, 'nope.img'), '--listen', `unix:${join(dir, 's')}`]);
  assert.equal(nofile.code, 2);
  assert.match(nofile.stderr, /nope\.img does not exist/);
  writeFileSync(join(dir, 'a.img'), Buffer.alloc(4096));
  const badAddr = await flimcd(['export', '--image', join(dir, 'a.img'), '--listen', 'http://x']);
  assert.equal(badAddr.code, 2);
  assert.match(badAddr.stderr, /--listen.*unix: or tcp:/);
  const badPort = await flimcd(['export', '--image', join(dir, 'a.img'), '--listen', 'tcp:127.0.0.1:99999']);
  assert.equal(badPort.code, 2);
  assert.match(badPort.stderr, /port 99999/);
  const unknown = await flimcd(['frobnicate']);
  assert.equal(unknown.code, 2);
});

test('export serves a real client and stops gracefully on SIGTERM (exit 143) with the data on disk', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, '');
  truncateSync(img, 4 << 20);
  const sock = join(dir, 'vm.sock');
  const { child, line, exited } = await flimcdBackground(['export', '--image', img, '--listen', `unix:${sock}`, '--name', 'vm', '--json'], /"event":"listening"/);
  t.after(() => child.kill('SIGKILL'));
  const ev = JSON.parse(line);
  assert.equal(ev.size, 4 << 20);
  assert.equal(ev.uri, `nbd+unix:///vm?socket=${sock}`);
  await runOk('qemu-io', ['-f', 'raw', ev.uri, '-c', 'write -P 0x3c 1M 512k', '-c', 'read -P 0x3c 1M 512k']);
  child.kill('SIGTERM');
  const r = await exited;
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stdout, /"event":"stopped"/);
  const file = readFileSync(img);
  assert.ok(file.subarray(1 << 20, (1 << 20) + (512 << 10)).every((b) => b === 0x3c));
});

test('export --read-only refuses writes with EPERM through a real client', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'ro.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 7));
  const sock = join(dir, 'ro.sock');
  const { child, line, exited } = await flimcdBackground(['export', '--image', img, '--listen', `unix:${sock}`, '--read-only', '--json'], /"event":"listening"/);
  t.after(() => child.kill('SIGKILL'));
  const { uri } = JSON.parse(line);
  const r = await runOk('qemu-io', ['-f', 'raw', '-r', uri, '-c', 'read -P 7 0 64k']);
  assert.match(r.stdout, /read 65536/);
  const { run } = await import('../helpers/peers.ts');
  const w = await run('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 1 0 4k']);
  assert.match(w.stdout + w.stderr, /read-only|Permission|not permitted/i);
  assert.ok(readFileSync(img).every((b) => b === 7), 'image unchanged');
  child.kill('SIGINT');
  assert.equal((await exited).code, 130);
});

test('export --record-trace records what a real client did, and simulate replays the .zst trace', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, '');
  truncateSync(img, 8 << 20);
  const sock = join(dir, 'vm.sock');
  const trace = join(dir, 'vm.fiu.zst');
  const { child, line, exited } = await flimcdBackground(['export', '--image', img, '--listen', `unix:${sock}`, '--record-trace', trace, '--json'], /"event":"listening"/);
  t.after(() => child.kill('SIGKILL'));
  const { uri } = JSON.parse(line);
  await runOk('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x5a 1M 64k', '-c', 'read -P 0x5a 1M 64k', '-c', 'write -z 2M 128k', '-c', 'read 4M 8k']);
  child.kill('SIGTERM');
  const r = await exited;
  assert.equal(r.code, 143, r.stderr);
  const ev = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"event":"trace"'))!);
  assert.equal(ev.dropped, 0);
  const { readTraceText } = await import('../../src/workload/trace-recorder.ts');
  const { parseFiuTrace } = await import('../../src/workload/fiu-trace.ts');
  const records = [...parseFiuTrace(readTraceText(trace))];
  assert.equal(records.length, ev.recorded);
  // qemu-io's own probing reads come first; our four requests follow in order.
  const ours = records.filter((x) => x.lba >= 2048);
  assert.deepEqual(ours.map((x) => [x.op, x.lba * 512, x.sectors * 512]), [['write', 1 << 20, 64 << 10], ['read', 1 << 20, 64 << 10], ['write', 2 << 20, 128 << 10], ['read', 4 << 20, 8 << 10]]);
  assert.deepEqual(ours[1]!.digests, ours[0]!.digests, 'the read saw what was written');
  assert.equal(new Set(ours[0]!.digests).size, 1, 'sixteen equal pages, one digest');
  assert.equal(new Set([...ours[2]!.digests, ...ours[3]!.digests]).size, 1, 'zeroes written and never-written space read the same');
  const sim = await flimcd(['simulate', '--workload', `trace:${trace}`, '--image', img, '--algorithm', 'postcopy', '--warmup', '0s', '--json']);
  assert.equal(sim.code, 0, sim.stderr);
  assert.equal(JSON.parse(sim.stdout).results[0].verified, true);
});
