// The target's status shows progress and an ETA in every phase (issue 21): in
// pre-copy from the source's first pass as it arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { precopyProgress } from '../../src/migrate/target-agent.ts';
import { createStatusEnricher } from '../../src/control/status.ts';

test('pre-copy progress at the target: the first pass as it arrives; an unknown ETA once it is done', () => {
  assert.deepEqual(precopyProgress('precopy', 100, 25), { remainingBlocks: 75, progress: 0.25 });
  assert.deepEqual(precopyProgress('precopy', 100, 100), { remainingBlocks: 0, progress: 1, etaSeconds: null });
  assert.deepEqual(precopyProgress('cutover', 100, 60), { remainingBlocks: 40, progress: 0.6, etaSeconds: null });
  assert.deepEqual(precopyProgress('postcopy', 100, 60), {}, 'post-copy has the missing set');
});

test('enriched, a pre-copy target status has progress and an ETA from its receive rate', () => {
  let t = 0;
  const enrich = createStatusEnricher({ role: 'target', now: () => t });
  const raw = (received: number, arrived: number) => ({ phase: 'precopy', blocks: 1000, blockSize: 65536, receivedBytes: received, ...precopyProgress('precopy', 1000, arrived) });
  enrich(raw(0, 0));
  t = 1000;
  const s = enrich(raw(6_553_600, 100)); // 100 blocks in a second
  assert.equal(s.progress, 0.1);
  assert.equal(s.remainingBlocks, 900);
  assert.equal(s.etaSeconds, 9);
});
