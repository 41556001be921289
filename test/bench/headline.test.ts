import { test } from 'node:test';
import assert from 'node:assert/strict';
import { medianOfRatios, pool, pooledRate, pooledRatio, ratioOfMedians, ratioToBaseline, worstRatio } from '../../bench/headline.ts';

test('ratioOfMedians divides the medians, not the runs pairwise', () => {
  // Medians 20 and 10; the pairwise ratios 1, 2, 0.5 would have a median of 1.
  assert.equal(ratioOfMedians([10, 20, 30], [10, 10, 60]), 2);
  // An even count takes the mean of the middle two: 25 / 10.
  assert.equal(ratioOfMedians([40, 10, 20, 30], [10, 10]), 2.5);
});

test('ratioToBaseline is NaN without a positive baseline', () => {
  assert.equal(ratioToBaseline(0.03, 0.12), 0.25);
  assert.ok(Number.isNaN(ratioToBaseline(0.03, 0)));
  assert.ok(Number.isNaN(ratioToBaseline(0.03, -1)));
});

test('worstRatio is the largest over workloads', () => {
  assert.equal(worstRatio([0.2, 0.7, 0.4]), 0.7);
  assert.equal(worstRatio([1.3]), 1.3);
});

test('medianOfRatios leaves out cells without a finite numerator or a positive denominator', () => {
  const cells = [
    { num: 1, den: 4 }, // 0.25
    { num: 3, den: 4 }, // 0.75
    { num: 2, den: 4 }, // 0.5
    { num: 5, den: 0 }, // no baseline
    { num: undefined, den: 4 }, // cell missing
    { num: NaN, den: 4 },
    { num: 1, den: undefined },
  ];
  assert.equal(medianOfRatios(cells), 0.5);
  assert.ok(Number.isNaN(medianOfRatios([{ num: 1, den: 0 }])));
  assert.ok(Number.isNaN(medianOfRatios([])));
});

test('pooled and median-of-ratios differ when some cells rest on tiny denominators', () => {
  // Misses out of post-copy reads per cell. Cells 1 and 2: flimcd read only 2 blocks, so its rate
  // is 0.5 there; cell 3 is large and flimcd misses far less than postcopy.
  const flimcd = [{ events: 1, trials: 2 }, { events: 1, trials: 2 }, { events: 10, trials: 1000 }];
  const postcopy = [{ events: 100, trials: 1000 }, { events: 100, trials: 1000 }, { events: 500, trials: 1000 }];
  // Per cell: 0.5/0.1 = 5, 5, 0.01/0.5 = 0.02 → median 5.
  const perCell = flimcd.map((f, i) => ({ num: f.events / f.trials, den: postcopy[i]!.events / postcopy[i]!.trials }));
  assert.equal(medianOfRatios(perCell), 5);
  // Pooled: 12/1004 against 700/3000.
  const pf = pool(flimcd);
  const pp = pool(postcopy);
  assert.deepEqual(pf, { events: 12, trials: 1004 });
  assert.deepEqual(pp, { events: 700, trials: 3000 });
  assert.ok(Math.abs(pooledRatio(pf, pp) - (12 / 1004) / (700 / 3000)) < 1e-12);
  assert.ok(pooledRatio(pf, pp) < 0.06, 'pooled, flimcd misses about 5 % as often');
});

test('pool skips cells with non-finite counts; a pool without trials has no rate', () => {
  assert.deepEqual(pool([{ events: 3, trials: 10 }, { events: NaN, trials: 5 }, { events: 1, trials: Infinity }]), { events: 3, trials: 10 });
  assert.ok(Number.isNaN(pooledRate({ events: 0, trials: 0 })));
  assert.ok(Number.isNaN(pooledRatio({ events: 1, trials: 10 }, { events: 0, trials: 0 })));
  assert.equal(pooledRatio({ events: 0, trials: 10 }, { events: 1, trials: 10 }), 0);
});
