import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampleReservoir } from '../../src/util/sample-reservoir.ts';

test('keeps every sample up to its cap: exact percentiles, count and mean', () => {
  const r = new SampleReservoir(100);
  assert.equal(r.percentile(50), undefined);
  assert.equal(r.mean, undefined);
  for (let i = 1; i <= 100; i++) r.record(i);
  assert.equal(r.count, 100);
  assert.equal(r.mean, 50.5);
  assert.equal(r.percentile(50), 50);
  assert.equal(r.percentile(99), 99);
  assert.equal(r.percentile(100), 100);
  assert.equal(r.percentile(0), 1);
});

test('past its cap: bounded memory, a uniform sample (percentiles close), count and mean exact', () => {
  const r = new SampleReservoir(1000);
  for (let i = 0; i < 100_000; i++) r.record(i % 1000);
  assert.equal(r.count, 100_000);
  assert.equal(r.mean, 499.5);
  const p50 = r.percentile(50)!;
  const p90 = r.percentile(90)!;
  assert.ok(Math.abs(p50 - 500) < 60, `p50 ${p50}`);
  assert.ok(Math.abs(p90 - 900) < 40, `p90 ${p90}`);
  // Late samples replace early ones: a shift in the measure shows up.
  for (let i = 0; i < 100_000; i++) r.record(5000);
  assert.equal(r.percentile(75), 5000, 'about half the kept samples are now the new value');
  assert.ok(r.percentile(25)! < 1000, 'and about half still the old ones');
});
