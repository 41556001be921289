// The VM keeps a disk whatever the operator does to the source agent (issue 21).
// Real agents as child processes, and `flimcd load` as the VM: it reads and
// writes through the source's NBD export (following a cut-over to the target's)
// and verifies every read. Before the cut-over a SIGINT, SIGTERM or `abort`
// ends the migration and the source serves the disk until the VM disconnects;
// after it a signal means "finish post-copy, then exit".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdWatched, type CliResult, type WatchedFlimcd } from '../helpers/cli.ts';
import { hasPeer, run } from '../helpers/peers.ts';
import { freePort } from '../helpers/net.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import type { TestCtx } from '../helpers/test-context.ts';
import { controlRequest } from '../../src/control/client.ts';
import { parseAddress } from '../../src/util/address.ts';
import { generateImage } from '../../src/workload/image-gen.ts';

type Proc = WatchedFlimcd;
const start = flimcdWatched;

/** The exit of `p`, which must come within `ms`. */
async function exitOf(p: Proc, ms = 30_000): Promise<CliResult> {
  const late = setTimeout(() => p.child.kill('SIGKILL'), ms);
  const r = await p.exited;
  clearTimeout(late);
  assert.notEqual(r.signal, 'SIGKILL', `still running after ${ms} ms\n${p.output()}`);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rig {
  dir: string;
  img: string;
  srcSock: string;
  dstSock: string;
  ctl: string;
  sourceArgs: string[];
  target: Proc | undefined;
  source: Proc;
  load: Proc;
  status(): Promise<Record<string, unknown>>;
}

/**
 * The VM first: the source (dialling), and a verifying load on its export
 * that follows a cut-over to the target's; once the VM is connected, the
 * target (and a wan in front of it) come up and the migration starts. `to`
 * overrides where the source dials (a dead address: it stays dialling).
 */
async function rig(t: TestCtx, o: { sourceArgs: string[]; size: number; wanBandwidth?: string; to?: string }): Promise<Rig> {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, o.size, { seed: 21 });
  const srcSock = join(dir, 'src.sock');
  const dstSock = join(dir, 'dst.sock');
  const link = join(dir, 'link.sock');
  const wanSock = join(dir, 'wan.sock');
  const ctl = `unix:${join(dir, 'src.ctl')}`;
  const to = o.to ?? `unix:${o.wanBandwidth ? wanSock : link}`;
  const sourceArgs = ['source', '--insecure', '--image', img, '--to', to, '--nbd', `unix:${srcSock}`, '--control', ctl, '--json', ...o.sourceArgs];
  const source = start(t, sourceArgs);
  await untilSeen(source, /"event":"listening"/, 30_000);
  const load = start(t, ['load', '--nbd', `unix:${srcSock}`, '--then', `unix:${dstSock}`, '--profile', 'moderate', '--bandwidth', '20Mbit', '--duration', '300s', '--verify-base', img, '--final-verify', '--json']);
  const ctlAddr = parseAddress(ctl, '--control');
  const status = () => controlRequest<Record<string, unknown>>(ctlAddr, 'GET', '/status', undefined, { timeoutMs: 5000 });
  const r: Rig = { dir, img, srcSock, dstSock, ctl, sourceArgs, target: undefined, source, load, status };
  await untilStatus(r, 'the VM connected to the source', (st) => (st.vmConnections as number) > 0);
  if (o.to) return r;
  // A wan listening before the target would hang up on the source, which would take that for a TLS target.
  r.target = start(t, ['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', `unix:${link}`, '--nbd', `unix:${dstSock}`, '--json']);
  await untilSeen(r.target, /"event":"listening"/, 30_000);
  if (o.wanBandwidth) {
    const wan = start(t, ['wan', '--listen', `unix:${wanSock}`, '--to', `unix:${link}`, '--bandwidth', o.wanBandwidth, '--rtt', '2ms', '--json']);
    await untilSeen(wan, /"event":"listening"/, 30_000);
  }
  return r;
}

/** Waits until the source's status satisfies `cond` (e.g. the VM is connected, the phase is reached). */
async function untilStatus(r: Rig, what: string, cond: (st: Record<string, unknown>) => boolean): Promise<void> {
  const deadline = Date.now() + 40_000;
  for (let st = await r.status(); !cond(st); st = await r.status()) {
    assert.ok(Date.now() < deadline, `${what}: not reached (status ${JSON.stringify(st)})\n${r.source.output()}\n${r.load.output()}`);
    await sleep(100);
  }
}

/** Waits until `p`'s output matches `re`; fails with that output. */
async function untilSeen(p: Proc, re: RegExp, ms = 20_000): Promise<void> {
  try {
    await until(() => p.seen(re), ms, `${re} not seen`);
  } catch (e) {
    assert.fail(`${(e as Error).message}\n${p.output()}`);
  }
}

/** Stops the load (the VM) and returns its report: it must have run clean. */
async function stopLoad(load: Proc, o: { switched: boolean }): Promise<Record<string, unknown>> {
  assert.ok(load.running(), `the workload died\n${load.output()}`);
  load.child.kill('SIGINT');
  const r = await exitOf(load, 60_000);
  assert.equal(r.code, 0, `workload exit\n${load.output()}`);
  const rep = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { error: unknown; switch_over: unknown; writes: number; verify: { mismatches: number; final: { pages_checked: number } | null } };
  assert.equal(rep.error, null, 'the VM never lost its disk');
  assert.equal(rep.verify.mismatches, 0, 'every read returned what was written');
  assert.ok(rep.verify.final && rep.verify.final.pages_checked > 0, 'the final read-back ran');
  assert.ok(rep.writes > 0, 'the VM wrote');
  if (o.switched) assert.ok(rep.switch_over, 'the VM moved to the target at the cut-over');
  else assert.equal(rep.switch_over, null, 'the VM stayed at the source');
  return rep;
}

/** The target's export takes no write from the VM (it answers with an error, or is gone). */
async function targetNotWritable(r: Rig): Promise<void> {
  if (!existsSync(r.dstSock) || !hasPeer('qemu-io')) return;
  const q = await run('qemu-io', ['-f', 'raw', `nbd+unix:///?socket=${r.dstSock}`, '-c', 'write -P 0x5a 0 4096'], { timeoutMs: 20_000 });
  assert.doesNotMatch(q.stdout, /wrote 4096\/4096 bytes/, `the aborted target took a write: ${q.stdout}${q.stderr}`);
}

const SERVING_UNTIL_DISCONNECT = /"event":"serving","migrated":false,"until":"vm-disconnects"/;

// Before the cut-over (pre-copy, kept there by --manual-cutover): one SIGTERM, SIGINT or abort.
for (const [how, code] of [['SIGTERM', 143], ['SIGINT', 130], ['abort', 1]] as const) {
  test(`pre-copy: ${how} ends the migration, the VM keeps running at the source with 0 mismatches, the source exits ${code} once it disconnects`, async (t) => {
    const r = await rig(t, { sourceArgs: ['--manual-cutover'], size: 8 << 20 });
    await untilStatus(r, 'the VM connected in pre-copy', (st) => st.phase === 'precopy' && (st.vmConnections as number) > 0);
    await sleep(500); // the VM writes during the pre-copy
    if (how === 'abort') {
      const a = await flimcd(['abort', '--control', r.ctl, '--reason', 'test']);
      assert.equal(a.code, 0, a.stderr);
    } else {
      r.source.child.kill(how);
    }
    await untilSeen(r.source, SERVING_UNTIL_DISCONNECT, 20_000);
    // The target side of the aborted migration never becomes the VM's disk.
    const target = r.target!;
    await untilSeen(target, /source aborted|migration aborted/, 20_000);
    await targetNotWritable(r);
    await sleep(1000); // the VM keeps writing and reading at the source
    assert.ok(r.source.running(), `the source left while the VM used its disk\n${r.source.output()}`);
    await stopLoad(r.load, { switched: false });
    const s = await exitOf(r.source, 20_000);
    assert.equal(s.code, code, r.source.output());
    assert.ok(!existsSync(r.srcSock), 'the NBD socket file is removed');
  });
}

// While dialling a target that is not there: the same, without a target to tell.
for (const [how, code] of [['SIGTERM', 143], ['abort', 1]] as const) {
  test(`dialling: ${how} ends the migration, the VM keeps its disk at the source until it disconnects, exit ${code}`, async (t) => {
    const r = await rig(t, { sourceArgs: [], size: 4 << 20, to: `tcp:127.0.0.1:${await freePort()}` });
    await untilSeen(r.source, /waiting for the target agent|target agent unreachable/, 20_000);
    await sleep(800);
    if (how === 'abort') assert.equal((await flimcd(['abort', '--control', r.ctl])).code, 0);
    else r.source.child.kill(how);
    await untilSeen(r.source, SERVING_UNTIL_DISCONNECT, 20_000);
    await sleep(1000);
    assert.ok(r.source.running(), `the source left while the VM used its disk\n${r.source.output()}`);
    await stopLoad(r.load, { switched: false });
    assert.equal((await exitOf(r.source, 20_000)).code, code, r.source.output());
    assert.ok(existsSync(`${r.img}.flimcd`), 'the migration state stays for a resume');
  });
}

// The cut-over window, held open for seconds: `precopy` cuts over with stop-and-copy, which sends
// everything still missing over a slow link while the VM's I/O is held.
test('cut-over window (stop-and-copy under way): SIGTERM finishes the migration, exit 0; the VM continues at the target with 0 mismatches', async (t) => {
  const r = await rig(t, { sourceArgs: ['--algorithm', 'precopy', '--manual-cutover', '--no-compress'], size: 4 << 20, wanBandwidth: '4Mbit' });
  await untilStatus(r, 'pre-copy under way', (st) => st.phase === 'precopy');
  await controlRequest(parseAddress(r.ctl, '--control'), 'POST', '/cutover', {}, { timeoutMs: 5000 });
  await untilStatus(r, 'the cut-over window', (st) => st.phase === 'cutover');
  r.source.child.kill('SIGTERM');
  await untilSeen(r.source, /SIGTERM after the cut-over.*finishing post-copy, then exiting/, 10_000);
  const s = await exitOf(r.source, 60_000);
  assert.equal(s.code, 0, r.source.output());
  assert.match(s.stdout, /"event":"report".*"verified":true/);
  await stopLoad(r.load, { switched: true });
});

// After the cut-over: post-copy over a slow link, so it lasts several seconds.
const POSTCOPY = { sourceArgs: ['--algorithm', 'postcopy', '--no-compress'], size: 4 << 20, wanBandwidth: '4Mbit' };

test('post-copy: abort is refused, SIGTERM finishes post-copy (logged), a second asks for confirmation; exit 0, the VM ran on at the target with 0 mismatches', async (t) => {
  const r = await rig(t, POSTCOPY);
  await untilSeen(r.source, /cut-over: VM I\/O held/, 30_000);
  await untilStatus(r, 'post-copy with the VM at the target', (st) => st.phase === 'postcopy');
  // What `flimcd abort` asks (quicker than spawning it while post-copy runs; test/control/server.test.ts has the 409).
  await assert.rejects(controlRequest(parseAddress(r.ctl, '--control'), 'POST', '/abort', {}, { timeoutMs: 5000 }), /cannot abort after the cut-over/);
  r.source.child.kill('SIGTERM');
  await untilSeen(r.source, /SIGTERM after the cut-over.*finishing post-copy, then exiting/, 10_000);
  r.source.child.kill('SIGTERM');
  await untilSeen(r.source, /second SIGTERM within 10 s.*send a third signal within 10 s.*or SIGKILL/, 10_000);
  const s = await exitOf(r.source, 60_000);
  assert.equal(s.code, 0, r.source.output());
  assert.match(s.stdout, /"event":"report".*"verified":true/);
  assert.ok(r.source.seen(/post-copy finished, as SIGTERM asked: exiting/));
  await stopLoad(r.load, { switched: true });
});

test('post-copy: a third SIGINT within the window exits 130 with the state kept; the target keeps the VM waiting, a restarted source finishes', async (t) => {
  const r = await rig(t, POSTCOPY);
  await untilSeen(r.source, /cut-over: VM I\/O held/, 30_000);
  for (const want of [/SIGINT after the cut-over.*finishing post-copy/, /second SIGINT within 10 s/]) {
    r.source.child.kill('SIGINT');
    await untilSeen(r.source, want, 10_000);
  }
  r.source.child.kill('SIGINT');
  const s = await exitOf(r.source, 10_000);
  assert.equal(s.code, 130, r.source.output());
  assert.match(s.stderr, /third SIGINT within 10 s: exiting before post-copy finished.*restart with the same arguments to resume/);
  assert.ok(existsSync(join(`${r.img}.flimcd`, 'source.json')), 'the state stays for a resume');
  await sleep(1000); // the VM runs at the target without its source: reads of missing blocks wait
  const again = start(t, r.sourceArgs);
  const s2 = await exitOf(again, 60_000);
  assert.equal(s2.code, 0, again.output());
  assert.match(s2.stdout, /"event":"report".*"verified":true/);
  await stopLoad(r.load, { switched: true });
});

test('source --help and abort --help say what a stop does before and after the cut-over', async () => {
  const s = await flimcd(['source', '--help']);
  assert.equal(s.code, 0);
  assert.match(s.stdout.replace(/\s+/g, ' '), /before the cut-over a SIGINT, SIGTERM or `flimcd abort` ends the migration; the VM's disk stays here, served until the VM disconnects/);
  assert.match(s.stdout.replace(/\s+/g, ' '), /After the cut-over a signal means "finish post-copy, then exit".*a second within 10 s asks for confirmation/);
  assert.match(s.stdout, /130 SIGINT, 143 SIGTERM/);
  const a = await flimcd(['abort', '--help']);
  assert.match(a.stdout.replace(/\s+/g, ' '), /serves its disk until the VM disconnects, then exits 1/);
});
