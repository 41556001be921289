// Agent crash (kill -9) and restart with the same arguments: the session
// resumes from durable state, with the VM's workload running through it.
// Agents are child processes; the WAN emulator sits between them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFaultSchedule } from '../faults/fault-run.ts';
import { tempDir } from '../helpers/tmp.ts';

const MiB = 1024 * 1024;

test('source killed -9 in pre-copy and restarted: resumes without resending what the target already has', async (t) => {
  const size = 16 * MiB;
  // A slow link, so the kill lands well inside pre-copy even when the machine is busy.
  const r = await runFaultSchedule({ seed: 11, algorithm: 'hybrid', bandwidthBps: 15e6, events: [{ phase: 'precopy', afterMs: 900, kind: 'kill-source', ms: 200 }] }, tempDir(t), { size });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.fired, ['kill-source@precopy(now precopy)'], 'the kill came during pre-copy');
  assert.equal(r.restarts.source, 1);
  assert.equal(r.verified, true);
  const report = r.report as { blocks: { sent_data: number }; dedup: { offered_blocks: number }; resumes: { sessions?: number; wire_bytes_exact?: boolean } };
  assert.ok((report.resumes.sessions ?? 0) >= 2, 'the report covers the killed process\'s session too');
  assert.equal(report.resumes.wire_bytes_exact, false);
  assert.ok(report, 'the restarted source printed its report');
  const n = size / 65536;
  // The restarted source re-derived what the target lacks by content id: most blocks were already there.
  assert.ok(report.dedup.offered_blocks > n / 4, `offered ${report.dedup.offered_blocks} of ${n} blocks by id`);
  assert.ok(report.blocks.sent_data < 0.75 * n, `after the restart ${report.blocks.sent_data} of ${n} blocks went as data: not restarted from zero`);
});

test('target killed -9 in post-copy and restarted: serves the VM again from its durable presence map and completes', async (t) => {
  // Post-copy from the start: most blocks are still missing when the VM, now at the target, writes; the kill comes mid-push.
  const r = await runFaultSchedule({ seed: 12, algorithm: 'postcopy', bandwidthBps: 40e6, events: [{ phase: 'postcopy', afterMs: 1200, kind: 'kill-target', ms: 300 }] }, tempDir(t));
  assert.deepEqual(r.problems, []);
  assert.equal(r.restarts.target, 1);
  assert.equal(r.verified, true);
  assert.equal(r.mismatches, 0, 'the target image is byte-exact against what the VM wrote');
});

test('target killed -9 in pre-copy and source killed -9 in post-copy: both resume', async (t) => {
  const r = await runFaultSchedule({
    seed: 13, algorithm: 'flimcd', bandwidthBps: 40e6,
    events: [{ phase: 'precopy', afterMs: 300, kind: 'kill-target', ms: 200 }, { phase: 'postcopy', afterMs: 0, kind: 'kill-source', ms: 200 }],
  }, tempDir(t));
  assert.deepEqual(r.problems, []);
  assert.equal(r.restarts.target, 1);
  assert.ok(r.fired.length === 2, `fired ${r.fired.join(', ')}; missed ${r.missed.join(', ')}`);
  assert.equal(r.verified, true);
  // The restarted source reports the whole migration, not only its own post-copy session.
  const report = r.report as { time_total_s: number; time_precopy_s: number; downtime_ms: number; wire_bytes: number; resumes: { sessions?: number; earlier_wire_bytes?: number; wire_bytes_exact?: boolean } };
  // At least the first process's and the restarted one's (the session after the target restart is counted only if a checkpoint caught it).
  assert.ok((report.resumes.sessions ?? 0) >= 2, `sessions ${report.resumes.sessions}`);
  assert.equal(report.resumes.wire_bytes_exact, false, 'a killed source leaves its last checkpoint, not an exact count');
  assert.ok(report.time_precopy_s > 0, 'pre-copy ran in an earlier session; its time is kept');
  assert.ok(report.time_total_s > report.time_precopy_s);
  assert.ok(report.wire_bytes >= (report.resumes.earlier_wire_bytes ?? 0));
});
