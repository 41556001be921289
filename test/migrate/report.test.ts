// The final report's times from the engine's phases, and a resumed session's report folded with what earlier sessions spent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReport, withEarlierSessions, type MigrationReport, type ReportInput } from '../../src/migrate/report.ts';

const last = {
  algorithm: 'flimcd', time_total_s: 10, time_precopy_s: 8, time_postcopy_s: 1.9, downtime_ms: 100,
  wire_bytes: 1000, wire_bytes_breakdown: { data: 900, reference: 50, zero: 10, control: 40 }, resumes: { reattached: 1, resynced: 1 },
} as unknown as MigrationReport;

test('a session resumed before the cut-over: its pre-copy and total times grow by the time since the first start; bytes add up by kind', () => {
  const r = withEarlierSessions(last, { sessions: 1, elapsedMs: 5000, wire: { data: 400, reference: 0, zero: 20, control: 30 }, exact: true });
  assert.equal(r.time_total_s, 15);
  assert.equal(r.time_precopy_s, 13);
  assert.equal(r.time_postcopy_s, 1.9);
  assert.equal(r.downtime_ms, 100);
  assert.deepEqual(r.wire_bytes_breakdown, { data: 1300, reference: 50, zero: 30, control: 70 });
  assert.equal(r.wire_bytes, 1450);
  assert.deepEqual(r.resumes, { reattached: 1, resynced: 1, sessions: 2, earlier_wire_bytes: 450, wire_bytes_exact: true });
});

test('a session resumed after the cut-over keeps the earlier pre-copy time and downtime', () => {
  const postcopyOnly = { ...last, time_total_s: 4, time_precopy_s: 0, time_postcopy_s: 4, downtime_ms: 0 };
  const r = withEarlierSessions(postcopyOnly, { sessions: 2, elapsedMs: 20_000, wire: { data: 0, reference: 0, zero: 0, control: 0 }, exact: false, cutover: { precopyMs: 15_000, downtimeMs: 250 } });
  assert.equal(r.time_total_s, 24);
  assert.equal(r.time_precopy_s, 15);
  assert.equal(r.downtime_ms, 250);
  assert.equal(r.time_postcopy_s, 8.75);
  assert.equal(r.resumes?.wire_bytes_exact, false);
  assert.equal(r.resumes?.sessions, 3);
});

const input: ReportInput = {
  algorithm: 'hybrid', features: { dedup: false, compress: false, hotOrder: false, prefetch: false },
  imageBytes: 1 << 20, blockSize: 65536, verified: true, root: 'ab',
  totalMs: 12_000, precopyMs: 9_000, downtimeMs: 250, enteredPostcopy: true,
  channel: { retransmittedBytes: 0, window: 0, inFlight: 0, minRttMs: 10, minAckRttMs: 12, deliveryRateBps: undefined, linkRateBps: 5e7 },
  wire: { data: 900, reference: 0, zero: 0, control: 200 },
  counts: {}, rounds: 2, cutoverReason: 'converged', bandwidthBps: 5e7,
  cpu: { seconds: 0.5, workerThreads: 2, workersBusyS: 0.25 },
  targetStats: {
    phase: 'done', blocks: 16, blockSize: 65536, receivedBlocks: {}, receivedBytes: 0,
    dedup: { refBlocks: 0, refFromReceived: 0, refFromLocal: 0, refFallback: 0, offered: 0, offerHave: 0, compressedBlocks: 0 },
    readBlocks: 0, missBlocks: 0, claimedByWrite: 0, partialWriteFetches: 0, droppedData: 0, fetchRequests: 0,
  },
};

test('the post-copy time is what follows the cut-over when the source went through a post-copy phase', () => {
  const r = buildReport(input);
  assert.equal(r.time_total_s, 12);
  assert.equal(r.time_precopy_s, 9);
  assert.equal(r.downtime_ms, 250);
  assert.equal(r.time_postcopy_s, 2.75);
  // Clock slack cannot make it negative.
  assert.equal(buildReport({ ...input, totalMs: 9_100 }).time_postcopy_s, 0);
});

test('without a post-copy phase the time after the cut-over (verification) is not post-copy time, whatever the algorithm', () => {
  assert.equal(buildReport({ ...input, algorithm: 'precopy', enteredPostcopy: false }).time_postcopy_s, 0);
  assert.equal(buildReport({ ...input, enteredPostcopy: false }).time_postcopy_s, 0);
  // The phase decides, not the algorithm's name.
  assert.equal(buildReport({ ...input, algorithm: 'precopy' }).time_postcopy_s, 2.75);
});

test('demand_fetch_rate counts read misses and partial-write fetches over all post-copy accesses', () => {
  const r = buildReport({ ...input, targetStats: { ...input.targetStats, readBlocks: 60, missBlocks: 6, writeBlocks: 40, writeMissBlocks: 4 } });
  assert.equal(r.block_miss_rate, 0.1);
  assert.equal(r.write_fetches, 4);
  assert.equal(r.blocks_written_postcopy, 40);
  assert.equal(r.demand_fetch_rate, 0.1);
  const older = buildReport({ ...input, targetStats: { ...input.targetStats, readBlocks: 50, missBlocks: 5, writeBlocks: undefined, writeMissBlocks: undefined } });
  assert.equal(older.write_fetches, 0, 'an older target does not count write fetches');
  assert.equal(older.demand_fetch_rate, 0.1);
});

test('CPU seconds per GiB of image at each side; null for a target that does not report them', () => {
  const gib = { ...input, imageBytes: 2 * 2 ** 30 };
  const r = buildReport({ ...gib, targetStats: { ...gib.targetStats, cpuS: 3, workersBusyS: 1.5 } });
  assert.deepEqual(r.cpu, { source_s: 0.5, target_s: 3, source_s_per_gib: 0.25, target_s_per_gib: 1.5, worker_threads: 2, source_workers_busy_s: 0.25, target_workers_busy_s: 1.5 });
  const older = buildReport(gib);
  assert.equal(older.cpu.target_s, null);
  assert.equal(older.cpu.target_s_per_gib, null);
});
