// A resumed session's report folded with what earlier sessions spent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withEarlierSessions, type MigrationReport } from '../../src/migrate/report.ts';

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
  const postcopyOnly = { ...last, time_total_s: 4, time_precopy_s: 0, time_postcopy_s: 4, downtime_ms: 0 } as MigrationReport;
  const r = withEarlierSessions(postcopyOnly, { sessions: 2, elapsedMs: 20_000, wire: { data: 0, reference: 0, zero: 0, control: 0 }, exact: false, cutover: { precopyMs: 15_000, downtimeMs: 250 } });
  assert.equal(r.time_total_s, 24);
  assert.equal(r.time_precopy_s, 15);
  assert.equal(r.downtime_ms, 250);
  assert.equal(r.time_postcopy_s, 8.75);
  assert.equal(r.resumes?.wire_bytes_exact, false);
  assert.equal(r.resumes?.sessions, 3);
});
