// The one percentile definition (nearest rank, p from 0 to 100) and the two
// measures that use it agreeing on the same samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentileOf, percentileRank } from '../../src/util/percentile.ts';
import { SampleReservoir } from '../../src/util/sample-reservoir.ts';
import { LatencyHistogram } from '../../src/workload/latency.ts';

test('nearest rank: the smallest value with at least p % of the values at or below it', () => {
  assert.equal(percentileRank(10, 50), 5);
  assert.equal(percentileRank(10, 51), 6);
  assert.equal(percentileRank(10, 0), 1);
  assert.equal(percentileRank(10, 100), 10);
  assert.equal(percentileRank(200, 99), 198);
  assert.equal(percentileOf([], 50), undefined);
  assert.equal(percentileOf([3, 1, 2], 50), 2, 'any order');
  assert.equal(percentileOf([4, 1, 3, 2], 50), 2, 'an even count takes the lower middle, not a mean');
  assert.equal(percentileOf([5], 99), 5);
});

test('the reservoir and the latency histogram answer the same percentile for the same samples', () => {
  const reservoir = new SampleReservoir();
  const histogram = new LatencyHistogram();
  assert.equal(histogram.percentile(50), undefined);
  assert.equal(histogram.summary().p50Ms, 0, 'an empty summary reads 0');
  for (let i = 1; i <= 1000; i++) {
    reservoir.record(i);
    histogram.record(i);
  }
  for (const p of [1, 50, 90, 99, 100]) {
    const exact = reservoir.percentile(p)!;
    const bucketed = histogram.percentile(p)!;
    assert.ok(Math.abs(bucketed - exact) / exact <= 0.011, `p${p}: ${bucketed} vs ${exact}`);
  }
  const s = histogram.summary();
  assert.equal(s.count, 1000);
  assert.equal(s.maxMs, 1000);
  assert.equal(s.p99Ms, histogram.percentile(99));
});
