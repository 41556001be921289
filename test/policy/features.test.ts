// Feature switches: the algorithm's defaults, overrides for ablation, and the HELLO names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featureList, featuresFromList, resolveFeatures } from '../../src/policy/algorithm.ts';

test('flimcd has hot order and prefetch on, the baselines off; overrides switch one alone', () => {
  assert.deepEqual(resolveFeatures('flimcd'), { hotOrder: true, prefetch: true });
  for (const a of ['precopy', 'postcopy', 'hybrid'] as const) assert.deepEqual(resolveFeatures(a), { hotOrder: false, prefetch: false });
  assert.deepEqual(resolveFeatures('flimcd', { prefetch: false }), { hotOrder: true, prefetch: false });
  assert.deepEqual(resolveFeatures('flimcd', { hotOrder: false }), { hotOrder: false, prefetch: true });
  assert.deepEqual(resolveFeatures('postcopy', { hotOrder: true }), { hotOrder: true, prefetch: false });
});

test('features travel as names; unknown names are ignored', () => {
  assert.deepEqual(featureList({ hotOrder: true, prefetch: true }), ['hot-order', 'prefetch']);
  assert.deepEqual(featureList({ hotOrder: false, prefetch: true }), ['prefetch']);
  assert.deepEqual(featuresFromList(['prefetch', 'dedup-v9']), { hotOrder: false, prefetch: true });
  assert.deepEqual(featuresFromList([]), { hotOrder: false, prefetch: false });
});
