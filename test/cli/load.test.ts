// The `flimcd load` command as an operator uses it: help, clear errors with
// exit code 2, a real run against `flimcd export` with a parsed JSON report,
// exit code 3 when verification fails, and --then following a source that dies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

const MiB = 2 ** 20;

function sparseImage(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

async function exportImage(t: TestCtx, img: string, sock: string) {
  const bg = await flimcdBackground(['export', '--image', img, '--listen', `unix:${sock}`, '--json'], /"event":"listening"/);
  t.after(() => bg.child.kill('SIGKILL'));
  return bg;
}

test('load --help lists the options, the profiles and examples', async () => {
  const r = await flimcd(['load', '--help']);
  assert.equal(r.code, 0);
  for (const s of ['--nbd <addr>', '--then <addr>', '--profile <name>', '--duration <time>', '--seed <n>', '--bandwidth <rate>', '--queue-depth <n>', '--verify-base <file>', '--final-verify', '--json', 'Examples:']) {
    assert.ok(r.stdout.includes(s), `help mentions ${s}`);
  }
  for (const p of ['idle', 'light', 'moderate', 'heavy', 'mail']) assert.match(r.stdout, new RegExp(`\\n  ${p}\\s`));
  const top = await flimcd(['--help']);
  assert.match(top.stdout, /\bload\b/);
});

test('bad input gets a clear error and exit code 2', async (t) => {
  const dir = tempDir(t);
  const sock = `unix:${join(dir, 'none.sock')}`;
  const cases: Array<[string[], RegExp]> = [
    [['load', '--profile', 'light'], /--nbd/],
    [['load', '--nbd', sock], /--profile/],
    [['load', '--nbd', sock, '--profile', 'frantic'], /unknown profile "frantic".*idle, light, moderate, heavy, mail/],
    [['load', '--nbd', 'localhost:10809', '--profile', 'light'], /--nbd.*unix: or tcp:/],
    [['load', '--nbd', sock, '--profile', 'light', '--duration', 'soon'], /--duration.*cannot read "soon"/],
    [['load', '--nbd', sock, '--profile', 'light', '--duration', '0s'], /--duration must be longer than 0/],
    [['load', '--nbd', sock, '--profile', 'light', '--bandwidth', 'fast'], /--bandwidth/],
    [['load', '--nbd', sock, '--profile', 'light', '--seed', '-4'], /--seed/],
    [['load', '--nbd', sock, '--profile', 'light', '--queue-depth', '0'], /--queue-depth/],
    [['load', '--nbd', sock, '--profile', 'light', '--block-size', '3000'], /--block-size/],
    [['load', '--nbd', sock, '--profile', 'light', '--then-export', 'x'], /--then-export needs --then/],
  ];
  const results = await Promise.all(cases.map(([args]) => flimcd(args)));
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
  });
  // A target the image cannot hold is a usage error too, explained.
  const img = join(dir, 'small.img');
  sparseImage(img, 32 * MiB);
  const s = join(dir, 'small.sock');
  await exportImage(t, img, s);
  const r = await flimcd(['load', '--nbd', `unix:${s}`, '--profile', 'heavy', '--bandwidth', '10Gbit', '--duration', '1s']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /larger image or a slower link/);
});

test('a short real run against flimcd export reports JSON with zero verify errors', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  sparseImage(img, 128 * MiB);
  const sock = join(dir, 'vm.sock');
  await exportImage(t, img, sock);
  const r = await flimcd(['load', '--nbd', `unix:${sock}`, '--profile', 'moderate', '--duration', '2s', '--seed', '5', '--json', '--final-verify', '--bandwidth', '100Mbit']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.profile, 'moderate');
  assert.equal(rep.image_bytes, 128 * MiB);
  assert.equal(rep.link_bits_per_s, 100e6);
  assert.equal(rep.target.dirty_bytes_per_s, 0.2 * 100e6 / 8);
  assert.ok(rep.target.iops > 50);
  assert.ok(rep.ops > 100 && rep.reads > rep.writes && rep.writes > 0, `${rep.ops} ops`);
  assert.ok(Math.abs(rep.iops / rep.target.iops - 1) < 0.35, `${rep.iops} IOPS vs target ${rep.target.iops}`);
  for (const k of ['read', 'write']) {
    for (const l of [rep.latency_ms[k], rep.response_ms[k]]) {
      assert.ok(l.count > 0 && l.p50 > 0 && l.p99 >= l.p50 && l.mean > 0, JSON.stringify(l));
    }
  }
  assert.ok(rep.dirty_bytes_per_s > 0 && rep.dirty_ratio > 0.3 && rep.dirty_ratio < 1.7, `dirty ratio ${rep.dirty_ratio}`);
  assert.equal(rep.switch_over, null);
  assert.equal(rep.verify.mismatches, 0);
  assert.ok(rep.verify.final.pages_checked > 0);
  assert.equal(rep.verify.final.scope, 'written');
  assert.ok(rep.per_second.length >= 2);
  assert.equal(rep.error, null);
});

test('pages that differ from --verify-base fail verification with exit code 3', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  sparseImage(img, 32 * MiB);
  const base = join(dir, 'base.img');
  sparseImage(base, 32 * MiB);
  const fd = openSync(base, 'r+');
  writeSync(fd, Buffer.alloc(MiB, 0x5a), 0, MiB, 7 * MiB); // the served image has zeroes there
  closeSync(fd);
  const sock = join(dir, 'vm.sock');
  await exportImage(t, img, sock);
  const r = await flimcd(['load', '--nbd', `unix:${sock}`, '--profile', 'light', '--duration', '300ms', '--verify-base', base, '--final-verify']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /MISMATCH page at \d+ \((read|final)\): expected the base image, found zeroes/);
  assert.match(r.stderr, /verification FAILED/);
});

test('--then: when the source dies mid-run the load continues on the second export', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  sparseImage(img, 128 * MiB);
  // Both exports serve the same file: what the source wrote is what the target serves.
  const a = await exportImage(t, img, join(dir, 'a.sock'));
  await exportImage(t, img, join(dir, 'b.sock'));
  const running = flimcd(['load', '--nbd', `unix:${join(dir, 'a.sock')}`, '--then', `unix:${join(dir, 'b.sock')}`, '--profile', 'heavy', '--duration', '2500ms', '--json']);
  // Kill the first export once the load is writing through it (process start-up time varies with machine load).
  const before = statSync(img).mtimeMs;
  const deadline = Date.now() + 30_000;
  while (statSync(img).mtimeMs === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 600));
  a.child.kill('SIGKILL');
  const r = await running;
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.ok(rep.switch_over, 'switched');
  assert.ok(rep.switch_over.at_s > 0.3 && rep.switch_over.at_s < 2.5, `at ${rep.switch_over.at_s}`);
  // The gap in completions spans the connect to the second export, and starts at the last completion
  // on the first (just before the kill, well after the start), not at the start of the run.
  const { stall_ms: stall, connect_ms: connect, at_s: at } = rep.switch_over;
  assert.ok(connect > 0 && stall >= connect && stall < 1000 * at, `stall ${stall} ms, connect ${connect} ms, switched at ${at} s`);
  assert.equal(rep.verify.mismatches, 0);
  assert.ok(rep.per_second.some((s: { disk: string }) => s.disk === 'secondary' || s.disk === 'both'));
});
