// Per-block flags for terabyte images: pages only where bits were set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SparseBits } from '../../src/util/sparse-bits.ts';

test('SparseBits sets, tests and clears bits across pages, counting them, and ignores out-of-range indexes', () => {
  const size = 2 ** 35; // 2 PiB of 64 KiB blocks: building it allocates nothing
  const s = new SparseBits(size);
  const bits = [0, 7, 8, 65535, 65536, 2 ** 30 + 3, size - 1];
  for (const b of bits) assert.equal(s.add(b), true, `add ${b}`);
  assert.equal(s.add(8), false, 'already set');
  assert.equal(s.count, bits.length);
  for (const b of bits) assert.equal(s.has(b), true, `has ${b}`);
  for (const b of [1, 9, 65534, 65537, 2 ** 30 + 2]) assert.equal(s.has(b), false, `not ${b}`);
  for (const b of [-1, size, 0.5, NaN]) {
    assert.equal(s.add(b), false);
    assert.equal(s.has(b), false);
  }
  assert.equal(s.delete(65536), true);
  assert.equal(s.delete(65536), false);
  assert.equal(s.has(65536), false);
  assert.equal(s.count, bits.length - 1);
  s.clearAll();
  assert.equal(s.count, 0);
  assert.equal(s.has(0), false);
});
