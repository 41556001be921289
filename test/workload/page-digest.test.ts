// The native page digest (native/sparse/pagedigest.c through libxxhash) is
// XXH3-128 of each 4 KiB, byte for byte hash-wasm's: traces recorded with and
// without the addon, and those already checked in, use the same ids.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createXXHash128 } from 'hash-wasm';
import { fiuPages, nativePageDigests, nativePageDigestsError } from '../../src/workload/page-digest.ts';

const reference = await createXXHash128();
const xxh128 = (b: Uint8Array): string => {
  reference.init();
  reference.update(b);
  return reference.digest('hex');
};

/** Skips (or, under CI, fails) a test that needs the addon. */
function needNative(t: TestContext): boolean {
  if (nativePageDigests) return true;
  // Under CI the addon and libxxhash0 must be there, unless the run deliberately tests the fallback.
  if (process.env.CI && !process.env.FLIMCD_NO_NATIVE) assert.fail(`native page digest missing under CI: ${nativePageDigestsError}`);
  t.skip(`native page digest not loaded: ${nativePageDigestsError}`);
  return false;
}

describe('native page digests', () => {
  it('are XXH3-128 of each 4 KiB (the last piece shorter), in canonical hex, written from the given offset', (t) => {
    if (!needNative(t)) return;
    const data = randomBytes(3 * 4096 + 100);
    const out = Buffer.alloc(16 * 6, 0xee);
    assert.equal(nativePageDigests!.digestPages(data, out, 32), 4);
    assert.equal(out.toString('hex', 0, 32), 'ee'.repeat(32), 'nothing written before `at`');
    for (let p = 0; p < 4; p++) assert.equal(out.toString('hex', 32 + 16 * p, 48 + 16 * p), xxh128(data.subarray(p * 4096, Math.min(data.length, (p + 1) * 4096))), `page ${p}`);
    // A view into a larger buffer digests the view, not the buffer from its start.
    assert.equal(nativePageDigests!.digestPages(data.subarray(4096, 8192), out, 0), 1);
    assert.equal(out.toString('hex', 0, 16), xxh128(data.subarray(4096, 8192)));
    assert.equal(nativePageDigests!.digestPages(new Uint8Array(0), out, 0), 0);
  });

  it('are equal for equal pages and differ for pages that differ in one byte', (t) => {
    if (!needNative(t)) return;
    const data = Buffer.alloc(4 * 4096, 7);
    data[2 * 4096 + 2000] = 8;
    data[3 * 4096 + 4095] = 9;
    const out = Buffer.alloc(64);
    nativePageDigests!.digestPages(data, out, 0);
    const d = [0, 1, 2, 3].map((p) => out.toString('hex', 16 * p, 16 * p + 16));
    assert.equal(d[0], d[1]);
    assert.equal(new Set(d).size, 3);
  });

  it('refuse an output without room for every digest', (t) => {
    if (!needNative(t)) return;
    assert.throws(() => nativePageDigests!.digestPages(new Uint8Array(8193), new Uint8Array(47), 0), RangeError);
    assert.throws(() => nativePageDigests!.digestPages(new Uint8Array(4096), new Uint8Array(32), 17), RangeError);
    assert.throws(() => nativePageDigests!.digestPages(new Uint8Array(4096), new Uint8Array(32), 33), RangeError);
  });
});

it('fiuPages counts one digest per 4 KiB of the sector-widened range', () => {
  assert.equal(fiuPages(0, 4096), 1);
  assert.equal(fiuPages(8192, 1 << 20), 256);
  assert.equal(fiuPages(1000, 100), 1);
  // 4096 bytes from sector 1's middle cover sectors 1..9: two pages, one more than the data has.
  assert.equal(fiuPages(600, 4096), 2);
});
