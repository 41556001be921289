// The simulator's ablation switches: applied to every variant, postcopy
// included, and named after what they changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applySwitches, parseVariants, parseWorkload } from '../../src/sim/scenario.ts';

test('switches turn an optimization on or off for every algorithm, and rename what they change', () => {
  const v = applySwitches(parseVariants('postcopy,flimcd,hybrid'), { hotOrder: true, compress: false });
  assert.deepEqual(v.map((x) => x.name), ['postcopy+hot-order', 'flimcd-no-zstd', 'hybrid+hot-order']);
  assert.deepEqual(v[0]!.features, { dedup: false, compress: false, hotOrder: true, prefetch: false });
  assert.equal(v[0]!.algorithm, 'postcopy');
  assert.deepEqual(v[1]!.features, { dedup: true, compress: false, hotOrder: true, prefetch: true });
  const off = applySwitches(parseVariants('flimcd'), { prefetch: false, dedup: false });
  assert.deepEqual(off.map((x) => x.name), ['flimcd-no-dedup-no-prefetch']);
  assert.deepEqual(applySwitches(parseVariants('postcopy'), {}), parseVariants('postcopy'), 'no switch, no change');
});

test('--workload files is the files profile, sized to the image and link', () => {
  const w = parseWorkload({ spec: 'files', imageBytes: 64 * 2 ** 20, bandwidthBps: 100e6, blockSize: 65536, seed: 1 });
  assert.equal(w.name, 'files');
  const r = w.requests().next();
  assert.ok(r && r.offset + r.length <= 64 * 2 ** 20);
  assert.throws(() => parseWorkload({ spec: 'file', imageBytes: 64 * 2 ** 20, bandwidthBps: 100e6, blockSize: 65536, seed: 1 }), /unknown workload "file".*files/);
});
