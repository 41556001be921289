// Real agents over real sockets through the WAN emulator, with the workload
// writing and checking through the source export and moving to the target at
// cut-over, for every algorithm: the target must match the workload's model
// everywhere (whole-disk check) and the Merkle roots must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLocalMigration } from '../../src/demo/local-migration.ts';
import { ALGORITHMS } from '../../src/policy/algorithm.ts';
import { log } from '../../src/util/log.ts';
import { tempDir } from '../helpers/tmp.ts';

for (const algorithm of ALGORITHMS) {
  test(`${algorithm}: real agents through the WAN emulator, workload verified at the target`, async (t) => {
    const dir = tempDir(t);
    const r = await runLocalMigration({
      dir, size: 48 * 1024 * 1024, bandwidthBps: 50e6, rttMs: 10, workload: 'moderate', algorithm, blockSize: 65536, seed: 3, log,
    });
    assert.equal(r.report.verified, true, 'Merkle roots agree');
    assert.equal(r.finalVerify.scope, 'whole-disk');
    assert.equal(r.finalVerify.mismatches, 0, 'every page at the target is what the workload wrote (or the original)');
    assert.equal(r.workload.verify.mismatches, 0, 'no read during the migration returned stale or missing data');
    assert.ok(r.workload.switchOver, 'the workload moved to the target');
    assert.ok(r.workload.writes > 0);
    assert.ok(r.report.wire_bytes > 0.5 * 32 * 1024 * 1024, 'the data crossed the link');
    // The VM's I/O is held from the freeze until the target serves: the workload saw at least that gap
    // between its last completion at the source and its first at the target (the report takes off half
    // a round trip, the gap adds the NBD reply's way back; 5 ms covers that).
    const { downtime_ms: downtime } = r.report;
    const stall = r.workload.switchOver.stallMs;
    assert.ok(downtime > 0 && downtime <= stall + 5 && downtime < 5000, `downtime ${downtime} ms, workload stall ${stall.toFixed(1)} ms`);
    // Pre-copy never enters a post-copy phase; post-copy moves nearly everything after its immediate cut-over.
    if (algorithm === 'precopy') assert.equal(r.report.time_postcopy_s, 0);
    if (algorithm === 'postcopy') assert.ok(r.report.time_postcopy_s > 0.5 * r.report.time_total_s, `post-copy ${r.report.time_postcopy_s} s of ${r.report.time_total_s} s`);
    // The reported link rate is what the link carried, not the window's probing max (which read 117 Mbit/s on 100).
    if (algorithm === 'precopy') {
      const m = r.report.link.measured_rate_bps!;
      assert.ok(m > 0.6 * 50e6 && m < 1.08 * 50e6, `measured ${(m / 1e6).toFixed(1)} Mbit/s on a 50 Mbit/s link`);
    }
    // Both round trips include the link's 10 ms. (Neither bounds the other: the ping's is the smallest
    // of a few pings, which may wait behind bulk data in the link's queue; the ack's is the smallest
    // over every message, and includes the target applying it.)
    const { rtt_ms: rtt, ack_rtt_ms: ack } = r.report.link;
    assert.ok(rtt !== null && rtt >= 9 && ack !== null && ack >= 9, `rtt ${rtt} ms, ack rtt ${ack} ms on a 10 ms link`);
  });
}
