import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseCompressionLevel } from '../../src/policy/compression-level.ts';

test('a slow link buys a higher level; a fast link keeps level 1', () => {
  const at = (linkBytesPerSec: number, measured = 230e6, currentLevel = 3, ratio = 1.8) => chooseCompressionLevel({ linkBytesPerSec, measuredBytesPerSec: measured, currentLevel, ratio });
  assert.equal(at(12.5e6), 9, '100 Mbit/s: level 9 still fills the link with half a core');
  assert.equal(at(125e6), 1, '1 Gbit/s needs the fastest level');
  assert.equal(at(40e6), 3);
  assert.ok(at(20e6) >= 6);
  // Monotonic in link speed.
  let prev = 99;
  for (const l of [1e6, 10e6, 30e6, 60e6, 120e6, 500e6]) {
    const lv = at(l);
    assert.ok(lv <= prev);
    prev = lv;
  }
});

test('a slow CPU lowers the level; no measurement yet uses a prior', () => {
  assert.equal(chooseCompressionLevel({ linkBytesPerSec: 12.5e6, measuredBytesPerSec: 20e6, currentLevel: 3, ratio: 2 }), 1);
  assert.ok(chooseCompressionLevel({ linkBytesPerSec: 12.5e6, measuredBytesPerSec: undefined, currentLevel: 3, ratio: 1 }) >= 3);
});
