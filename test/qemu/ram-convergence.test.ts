// vm migrate warns when QEMU's RAM migration does not converge (issue 21: a run
// left at 2 MB/s never converged, with no warning).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RamConvergenceWatch } from '../../src/qemu/ram-convergence.ts';

test('RAM convergence: a dirty rate at the send rate after a few passes is reported once', () => {
  const w = new RamConvergenceWatch();
  // The first passes copy the whole RAM: no verdict yet, whatever the rates.
  assert.equal(w.observe({ 'dirty-sync-count': 2, 'dirty-pages-rate': 10_000, 'page-size': 4096, mbps: 16, remaining: 1e8 }), undefined);
  // Converging: the guest dirties far less than QEMU sends.
  assert.equal(w.observe({ 'dirty-sync-count': 6, 'dirty-pages-rate': 50, 'page-size': 4096, mbps: 800, remaining: 1e6 }), undefined);
  // 2 MB/s sent, 40 MB/s dirtied.
  const v = w.observe({ 'dirty-sync-count': 6, 'dirty-pages-rate': 10_000, 'page-size': 4096, mbps: 16, remaining: 5e7 });
  assert.deepEqual(v, { dirtyBytesPerSecond: 40_960_000, sentBytesPerSecond: 2_000_000, syncs: 6, remainingBytes: 5e7 });
  assert.equal(w.observe({ 'dirty-sync-count': 7, 'dirty-pages-rate': 10_000, 'page-size': 4096, mbps: 16 }), undefined, 'once');
  assert.equal(new RamConvergenceWatch().observe(undefined), undefined);
});
