// Link loss in each phase: the agents reconnect and resume where they stopped
// (the channels resend only what the peer had not processed), and post-copy
// reads wait for the link up to --fetch-timeout, then fail with EIO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tempDir } from '../helpers/tmp.ts';
import { startAgentPair } from '../helpers/agent-pair.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import { FlimcdError } from '../../src/errors.ts';
import type { Address } from '../../src/util/address.ts';
import type { Phase } from '../../src/migrate/report.ts';
import { hasPeer, run as runPeer } from '../helpers/peers.ts';
import { nbdUri } from '../../src/util/address.ts';
import { until } from '../helpers/until.ts';

const MiB = 1024 * 1024;

test('pre-copy: a link cut a third of the way through resumes; nothing is sent again beyond what was in flight', async (t) => {
  const size = 16 * MiB;
  const pair = await startAgentPair({ dir: tempDir(t), size, algorithm: 'hybrid', bandwidthBps: 100e6 });
  t.after(pair.close);
  const n = size / pair.blockSize;
  const run = pair.source.migrate();
  await until(() => ((pair.source.status().counts as Record<string, number> | undefined)?.dataBlocks ?? 0) >= n / 3, 20_000);
  const cut = pair.wan.cut({ refuseMs: 300 });
  assert.equal(cut.connections, 1);
  const report = await run;
  await pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(pair.source.resumes.reattached >= 1, 'the source reattached its channel');
  assert.equal(pair.source.resumes.resynced, 0, 'no side restarted, so nothing was re-derived');
  assert.equal(report.blocks.resent_dirty, 0, 'no block was sent twice by the engine');
  assert.ok(report.blocks.sent_data + report.blocks.zero <= n, 'each block at most once');
  assert.ok(report.retransmitted_bytes > 0, 'what was in flight at the cut was resent');
  assert.ok(report.retransmitted_bytes < size / 2, `resent ${report.retransmitted_bytes} bytes: the in-flight window, not the image`);
  assert.ok(report.wire_bytes < 1.6 * size, `wire ${report.wire_bytes} bytes for a ${size}-byte image: not restarted from zero`);
  assert.ok(pair.imagesEqual(), 'target image byte-exact');
});

test('cut-over: a link cut as the hand-off starts resumes and the target takes over', async (t) => {
  const size = 8 * MiB;
  let pair!: Awaited<ReturnType<typeof startAgentPair>>;
  let cuts = 0;
  // eslint-disable-next-line prefer-const -- onPhase reads it while startAgentPair, which assigns it, runs
  pair = await startAgentPair({
    dir: tempDir(t), size, algorithm: 'hybrid', bandwidthBps: 200e6,
    onPhase: (p: Phase) => { if (p === 'cutover' && cuts++ === 0) pair.wan.cut({ refuseMs: 200 }); },
  });
  t.after(pair.close);
  const report = await pair.source.migrate();
  const result = await pair.target.result();
  assert.equal(cuts, 1);
  assert.equal(report.verified, true);
  assert.equal(result.verified, true);
  assert.ok(pair.source.resumes.reattached >= 1);
  assert.ok(report.wire_bytes < 1.6 * size);
  assert.ok(pair.imagesEqual());
});

test('post-copy: a link cut during the push resumes; the push continues where it stopped', async (t) => {
  const size = 16 * MiB;
  const pair = await startAgentPair({ dir: tempDir(t), size, algorithm: 'postcopy', bandwidthBps: 60e6 });
  t.after(pair.close);
  const n = size / pair.blockSize;
  const run = pair.source.migrate();
  // Mid-push: a third of the blocks arrived.
  await until(() => pair.target.postcopyDisk?.isActive === true && pair.target.postcopyDisk.missing.count < (2 * n) / 3, 20_000);
  pair.wan.cut({ refuseMs: 300 });
  const report = await run;
  await pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(pair.source.resumes.reattached >= 1);
  assert.ok(report.blocks.push + report.blocks.demand + report.blocks.zero <= n, 'each block pushed at most once');
  // What was in flight at the cut is sent again (nothing, when a starved source had nothing in flight); never the whole push.
  assert.ok(report.retransmitted_bytes < size / 2, `resent ${report.retransmitted_bytes} bytes`);
  assert.ok(pair.imagesEqual());
});

test('post-copy: a read of a missing block fails with EIO after --fetch-timeout while the link is down, and the migration still completes', async (t) => {
  const size = 16 * MiB;
  let pair!: Awaited<ReturnType<typeof startAgentPair>>;
  let cutAt = 0;
  // eslint-disable-next-line prefer-const -- onPhase reads it while startAgentPair, which assigns it, runs
  pair = await startAgentPair({
    dir: tempDir(t), size, algorithm: 'postcopy', bandwidthBps: 40e6,
    target: { fetchTimeoutMs: 400 },
    onPhase: (p: Phase) => { if (p === 'postcopy' && !cutAt) { cutAt = Date.now(); pair.wan.cut({ refuseMs: 2500 }); } },
  });
  t.after(pair.close);
  const run = pair.source.migrate();
  await until(() => cutAt > 0 && pair.target.postcopyDisk?.isActive === true, 20_000);
  const disk = pair.target.postcopyDisk!;
  const last = disk.missing.size - 1;
  assert.ok(disk.missing.get(last), 'the last block is still missing (the push goes in block order)');
  const client = await NbdClient.connect(pair.target.nbdAddress as Address);
  t.after(() => client.close());
  const t0 = Date.now();
  await assert.rejects(client.read(last * pair.blockSize, Buffer.alloc(4096)), (e: unknown) => e instanceof FlimcdError && nbdErrnoOf(e) === NbdErrno.EIO);
  const waited = Date.now() - t0;
  assert.ok(waited >= 350 && waited < 1400, `EIO after ${waited} ms (timeout 400 ms, link still down)`);
  if (hasPeer('qemu-io')) {
    assert.ok(disk.missing.get(last - 1) && Date.now() - cutAt < 1200, 'still missing, link still down');
    // QEMU's own NBD client sees the same: the guest would get an I/O error, not a hang.
    const q = await runPeer('qemu-io', ['-f', 'raw', nbdUri(pair.target.nbdAddress as Address, ''), '-c', `read ${(last - 1) * pair.blockSize} 4096`], { timeoutMs: 10_000 });
    assert.match(q.stdout + q.stderr, /read failed: Input\/output error/);
  }
  const report = await run;
  assert.equal(report.verified, true, 'the failed read did not break the migration');
  assert.ok(pair.source.resumes.reattached >= 1);
  const got = Buffer.alloc(pair.blockSize);
  await client.read(last * pair.blockSize, got);
  assert.ok(got.equals(readFileSync(pair.src).subarray(last * pair.blockSize, (last + 1) * pair.blockSize)));
});

test('post-copy: a read of a missing block waits through a link cut and returns the right data once the link is back', async (t) => {
  const size = 16 * MiB;
  let pair!: Awaited<ReturnType<typeof startAgentPair>>;
  let cutAt = 0;
  // eslint-disable-next-line prefer-const -- onPhase reads it while startAgentPair, which assigns it, runs
  pair = await startAgentPair({
    dir: tempDir(t), size, algorithm: 'postcopy', bandwidthBps: 40e6,
    target: { fetchTimeoutMs: 20_000 },
    onPhase: (p: Phase) => { if (p === 'postcopy' && !cutAt) { cutAt = Date.now(); pair.wan.cut({ refuseMs: 700 }); } },
  });
  t.after(pair.close);
  const run = pair.source.migrate();
  await until(() => cutAt > 0 && pair.target.postcopyDisk?.isActive === true, 20_000);
  const disk = pair.target.postcopyDisk!;
  const last = disk.missing.size - 1;
  assert.ok(disk.missing.get(last));
  const client = await NbdClient.connect(pair.target.nbdAddress as Address);
  t.after(() => client.close());
  const got = Buffer.alloc(pair.blockSize);
  await client.read(last * pair.blockSize, got);
  const waited = Date.now() - cutAt;
  assert.ok(waited >= 500, `the read waited for the link (${waited} ms after the cut)`);
  assert.ok(got.equals(readFileSync(pair.src).subarray(last * pair.blockSize, (last + 1) * pair.blockSize)), 'the data is the source\'s');
  const report = await run;
  assert.equal(report.verified, true);
  assert.ok(pair.imagesEqual());
});

test('a link down longer than the link timeout: the source gives up (VM disk still served, state kept), and a restarted source resumes', async (t) => {
  const size = 16 * MiB;
  const dir = tempDir(t);
  const pair = await startAgentPair({ dir, size, algorithm: 'hybrid', bandwidthBps: 100e6, source: { linkTimeoutMs: 800 } });
  t.after(pair.close);
  const n = size / pair.blockSize;
  const run = pair.source.migrate();
  await until(() => ((pair.source.status().counts as Record<string, number> | undefined)?.dataBlocks ?? 0) >= n / 2, 20_000);
  pair.wan.cut({ refuseMs: 2500 });
  await assert.rejects(run, (e: unknown) => e instanceof FlimcdError && e.code === 'FLIMCD_ERR_LINK_LOST');
  assert.equal(pair.source.gate.status, 'open', 'before cut-over the VM keeps its disk at the source');
  const { existsSync } = await import('node:fs');
  assert.ok(existsSync(`${pair.src}.flimcd/source.json`), 'the source kept its state');
  await pair.source.close();
  // Same arguments, new process (here: a new agent object): it finds the state and the session continues.
  const { SourceAgent } = await import('../../src/migrate/source-agent.ts');
  const { log } = await import('../../src/util/log.ts');
  const { join } = await import('node:path');
  const again = await SourceAgent.start({
    image: pair.src, security: pair.security, nbd: { kind: 'unix', path: join(dir, 'source.sock') }, to: pair.wan.address!, algorithm: 'hybrid', blockSize: pair.blockSize, bandwidthBps: 100e6, log: log.child({ agent: 'source-2' }),
  });
  t.after(() => again.close());
  const report = await again.migrate();
  assert.equal(report.verified, true);
  assert.equal(report.resumes?.resynced, 1, 'the target continued the session from its state');
  assert.ok(report.blocks.sent_data < 0.75 * n, `${report.blocks.sent_data} of ${n} blocks sent as data after the restart: not from zero`);
  assert.ok(pair.imagesEqual());
  assert.ok(!existsSync(`${pair.src}.flimcd`), 'a completed migration removes the source state');
});

test('a stalled link (no close, no RST) is declared lost after the silence timeout and reconnected', async (t) => {
  const size = 8 * MiB;
  const pair = await startAgentPair({ dir: tempDir(t), size, algorithm: 'hybrid', bandwidthBps: 50e6, source: { silenceTimeoutMs: 700 }, target: { silenceTimeoutMs: 700 } });
  t.after(pair.close);
  const n = size / pair.blockSize;
  const run = pair.source.migrate();
  await until(() => ((pair.source.status().counts as Record<string, number> | undefined)?.dataBlocks ?? 0) >= n / 4, 20_000);
  pair.wan.stall(2500);
  const report = await run;
  assert.equal(report.verified, true);
  assert.ok(pair.source.resumes.reattached >= 1, 'the silent link was replaced by a new connection');
  assert.ok(report.wire_bytes < 1.6 * size);
  assert.ok(pair.imagesEqual());
});
