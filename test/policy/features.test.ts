// Feature switches: the algorithm's defaults, overrides for ablation, and the HELLO names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featureList, featuresFromList, resolveFeatures } from '../../src/policy/algorithm.ts';

const none = { dedup: false, compress: false, hotOrder: false, prefetch: false };
const all = { dedup: true, compress: true, hotOrder: true, prefetch: true };

test('flimcd has every optimization on, the baselines none; overrides switch one alone', () => {
  assert.deepEqual(resolveFeatures('flimcd'), all);
  for (const a of ['precopy', 'postcopy', 'hybrid'] as const) assert.deepEqual(resolveFeatures(a), none);
  assert.deepEqual(resolveFeatures('flimcd', { prefetch: false }), { ...all, prefetch: false });
  assert.deepEqual(resolveFeatures('flimcd', { hotOrder: false }), { ...all, hotOrder: false });
  assert.deepEqual(resolveFeatures('flimcd', { dedup: false }), { ...all, dedup: false });
  assert.deepEqual(resolveFeatures('flimcd', { compress: false, prefetch: undefined }), { ...all, compress: false });
  assert.deepEqual(resolveFeatures('postcopy', { hotOrder: true }), { ...none, hotOrder: true });
});

test('features travel as names; unknown names are ignored', () => {
  assert.deepEqual(featureList(all), ['dedup', 'zstd', 'hot-order', 'prefetch']);
  assert.deepEqual(featureList({ ...none, prefetch: true }), ['prefetch']);
  assert.deepEqual(featuresFromList(['prefetch', 'dedup-v9']), { ...none, prefetch: true });
  assert.deepEqual(featuresFromList(['zstd', 'dedup']), { ...none, dedup: true, compress: true });
  assert.deepEqual(featuresFromList([]), none);
});
