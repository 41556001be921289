// The request generator and the profiles: determinism, the mix, the hot-spot
// skew, the pinned dirty rates (measured here by replaying the generator with
// an independent, Set-based count, not with the code the calibration uses),
// duplicate writes, and the content function.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AREA_SIZE, RequestGenerator, generateRequests, solveZipfExponent, type WorkloadRequest,
} from '../../src/workload/generator.ts';
import { contentFor, identifyPage, pageMatches, PAGE_SIZE } from '../../src/workload/content.ts';
import { PROFILE_NAMES, resolveProfile, type ResolvedProfile } from '../../src/workload/profiles.ts';
import { UsageError } from '../../src/errors.ts';

const GiB = 2 ** 30;
const IMAGE = 4 * GiB;
const BLOCK = 65536;

const resolvedCache = new Map<string, ResolvedProfile>();
function resolved(name: (typeof PROFILE_NAMES)[number], linkBits = 100e6, image = IMAGE): ResolvedProfile {
  const key = `${name}/${linkBits}/${image}`;
  let r = resolvedCache.get(key);
  if (!r) {
    r = resolveProfile(name, { linkBitsPerSecond: linkBits, imageBytes: image });
    resolvedCache.set(key, r);
  }
  return r;
}

function take(g: RequestGenerator, n: number): WorkloadRequest[] {
  const out: WorkloadRequest[] = [];
  for (let i = 0; i < n; i++) out.push(g.next()!);
  return out;
}

test('the generator is deterministic for a seed and differs across seeds', () => {
  const r = resolved('heavy');
  const a = take(new RequestGenerator(r.params, 42), 5000);
  const b = take(new RequestGenerator(r.params, 42), 5000);
  assert.deepEqual(a, b);
  const c = take(new RequestGenerator(r.params, 43), 5000);
  assert.notDeepEqual(a.map((x) => x.offset), c.map((x) => x.offset));
});

test('requests are in time order, page-aligned, inside the image and inside one area', () => {
  for (const name of PROFILE_NAMES) {
    const r = resolved(name);
    let last = 0;
    for (const q of take(new RequestGenerator(r.params, 7), name === 'idle' ? 200 : 20000)) {
      assert.ok(q.atMs >= last, `${name}: time order`);
      last = q.atMs;
      assert.equal(q.offset % PAGE_SIZE, 0);
      assert.equal(q.length % PAGE_SIZE, 0);
      assert.ok(q.length > 0 && q.offset + q.length <= IMAGE);
      assert.equal(Math.floor(q.offset / AREA_SIZE), Math.floor((q.offset + q.length - 1) / AREA_SIZE), `${name}: request crosses an area`);
      if (q.op === 'read') assert.equal(q.tag, 0);
      else assert.ok(q.tag > 0);
    }
  }
});

test('the operation rate matches the resolved IOPS and reads are about 70 % of requests', () => {
  for (const name of ['light', 'moderate', 'heavy', 'mail'] as const) {
    const r = resolved(name);
    const reqs = take(new RequestGenerator(r.params, 3), 50000);
    const reads = reqs.filter((q) => q.op === 'read').length / reqs.length;
    assert.ok(Math.abs(reads - 0.7) < 0.01, `${name}: read share ${reads}`);
    const rate = reqs.length / (reqs[reqs.length - 1]!.atMs / 1000);
    assert.ok(Math.abs(rate / r.iops - 1) < 0.03, `${name}: ${rate} IOPS vs resolved ${r.iops}`);
  }
});

test('at least 75 % of writes go to the hottest 10 % of areas (80 % to the designated hot set)', () => {
  for (const name of ['light', 'moderate', 'heavy', 'mail'] as const) {
    for (const image of [IMAGE, 20 * GiB, 256 * 2 ** 20]) {
      const r = resolved(name, 100e6, image);
      const areas = image / AREA_SIZE;
      const hot = Math.round(areas * 0.1);
      const g = new RequestGenerator(r.params, 11);
      const designated = new Set(g.writeHotAreas.subarray(0, hot));
      const perArea = new Float64Array(areas);
      let writes = 0;
      let inDesignated = 0;
      for (const q of take(g, 200000)) {
        if (q.op !== 'write') continue;
        const area = Math.floor(q.offset / AREA_SIZE);
        perArea[area]!++;
        if (designated.has(area)) inDesignated++;
        writes++;
      }
      // Measured: the hottest 10 % as observed (sampling and sequential runs can only push this above 80 %).
      const sorted = [...perArea].sort((x, y) => y - x);
      const share = sorted.slice(0, hot).reduce((a, b) => a + b, 0) / writes;
      const label = `${name} on ${image / GiB} GiB`;
      assert.ok(share >= 0.75, `${label}: hottest 10 % of areas got ${(share * 100).toFixed(1)} % of writes`);
      // By construction: the generator's own top-10 % ranks get 80 %.
      const d = inDesignated / writes;
      assert.ok(Math.abs(d - 0.8) < 0.03, `${label}: designated hot areas got ${(d * 100).toFixed(1)} % of writes`);
    }
  }
});

test('the Zipf exponent puts exactly 80 % of the mass on the top 10 %', () => {
  for (const n of [100, 4096, 20480, 1 << 20]) {
    const s = solveZipfExponent(n, 0.1, 0.8);
    let top = 0;
    let all = 0;
    for (let k = 1; k <= n; k++) {
      const w = Math.pow(k, -s);
      all += w;
      if (k <= Math.round(n * 0.1)) top += w;
    }
    assert.ok(Math.abs(top / all - 0.8) < 1e-6, `n=${n}: s=${s} gives ${top / all}`);
  }
});

/** Independent distinct-dirtying count: a Set of 64 KiB blocks per 1 s window. */
function replayDirtyRate(r: ResolvedProfile, seed: number, seconds: number): number {
  const perWindow: Set<number>[] = Array.from({ length: seconds }, () => new Set());
  for (const q of generateRequests(r.params, seed, seconds * 1000)) {
    if (q.op !== 'write') continue;
    const w = perWindow[Math.floor(q.atMs / 1000)]!;
    for (let b = Math.floor(q.offset / BLOCK); b <= Math.floor((q.offset + q.length - 1) / BLOCK); b++) w.add(b);
  }
  return (perWindow.reduce((a, s) => a + s.size, 0) * BLOCK) / seconds;
}

test('light, moderate and heavy dirty 5, 20 and 60 % of the link (±15 %), replayed with other seeds', () => {
  const rows: string[] = [];
  for (const linkBits of [100e6, 1e9]) {
    for (const image of [IMAGE, 20 * GiB]) {
      for (const [name, share] of [['light', 0.05], ['moderate', 0.2], ['heavy', 0.6], ['mail', 0.2]] as const) {
        const r = resolved(name, linkBits, image);
        const target = (share * linkBits) / 8;
        assert.equal(r.targetDirtyBytesPerSecond, target);
        for (const seed of [1, 2]) {
          const rate = replayDirtyRate(r, seed, 60);
          const ratio = rate / target;
          rows.push(`${name.padEnd(8)} ${String(linkBits / 1e6).padStart(4)} Mbit ${String(image / GiB).padStart(2)} GiB seed ${seed}: ${r.iops.toFixed(0).padStart(5)} IOPS → ${(rate / 1e6).toFixed(2)} MB/s (${(ratio * 100).toFixed(1)} % of target)`);
          assert.ok(Math.abs(ratio - 1) <= 0.15, rows[rows.length - 1]);
        }
      }
    }
  }
  console.log(rows.join('\n'));
});

test('mail: about half of the writes duplicate existing content, block-sized and block-aligned', () => {
  const r = resolved('mail');
  const writes = take(new RequestGenerator(r.params, 5), 100000).filter((q) => q.op === 'write');
  const dups = writes.filter((q) => q.dup);
  const share = dups.length / writes.length;
  assert.ok(share > 0.47 && share < 0.53, `duplicate share ${share}`);
  for (const d of dups) {
    assert.equal(d.length, BLOCK);
    assert.equal(d.offset % BLOCK, 0);
  }
  // Every duplicate is byte-identical to an earlier write of the same tag.
  const firstByTag = new Map<number, WorkloadRequest>();
  for (const w of writes) {
    if (w.tag < 0x80000000) continue;
    const first = firstByTag.get(w.tag);
    if (!first) {
      assert.equal(w.dup, false);
      firstByTag.set(w.tag, w);
    } else {
      assert.equal(w.dup, true);
    }
  }
  const [a, b] = dups.filter((d) => d.tag === dups[0]!.tag);
  assert.ok(a && b && a.offset !== b.offset);
  assert.deepEqual(contentFor(5, a.tag, a.offset, a.length), contentFor(5, b.tag, b.offset, b.length));
  // moderate has none
  assert.equal(take(new RequestGenerator(resolved('moderate').params, 5), 10000).filter((q) => q.dup).length, 0);
});

test('idle does no writes, only a trickle of reads', () => {
  const r = resolved('idle');
  assert.equal(r.writeIops, 0);
  const reqs = [...generateRequests(r.params, 1, 600_000)];
  assert.ok(reqs.every((q) => q.op === 'read'));
  assert.ok(Math.abs(reqs.length / 600 - 2) < 0.2, `${reqs.length / 600} IOPS`);
});

test('a target the image cannot hold is refused with a reason', () => {
  assert.throws(() => resolveProfile('heavy', { linkBitsPerSecond: 10e9, imageBytes: 512 * 2 ** 20 }), (e) => e instanceof UsageError && /larger image or a slower link/.test(e.message));
  assert.throws(() => resolveProfile('nope' as never, { linkBitsPerSecond: 1e8, imageBytes: GiB }), UsageError);
});

test('content: equal tag and phase give equal pages, anything else differs; stamps identify pages', () => {
  const seed = 9;
  const a = contentFor(seed, 17, 3 * AREA_SIZE + 8192, 3 * PAGE_SIZE);
  const b = contentFor(seed, 17, 7 * AREA_SIZE + 8192, 3 * PAGE_SIZE);
  assert.deepEqual(a, b);
  assert.notDeepEqual(contentFor(seed, 17, 0, PAGE_SIZE), contentFor(seed, 18, 0, PAGE_SIZE));
  assert.notDeepEqual(contentFor(seed, 17, 0, PAGE_SIZE), contentFor(seed, 17, PAGE_SIZE, PAGE_SIZE));
  assert.notDeepEqual(contentFor(seed, 17, 0, PAGE_SIZE), contentFor(seed + 1, 17, 0, PAGE_SIZE));
  assert.ok(a.some((x) => x !== 0));
  assert.ok(pageMatches(seed, 17, 3 * AREA_SIZE + 12288, a, PAGE_SIZE));
  assert.ok(!pageMatches(seed, 18, 3 * AREA_SIZE + 12288, a, PAGE_SIZE));
  const id = identifyPage(a, PAGE_SIZE);
  assert.deepEqual(id, { kind: 'workload', tag: 17, phase: 3, seed, intact: true });
  a[PAGE_SIZE + 100]! ^= 1;
  assert.equal((identifyPage(a, PAGE_SIZE) as { intact: boolean }).intact, false);
  assert.deepEqual(identifyPage(new Uint8Array(PAGE_SIZE), 0), { kind: 'zero' });
  assert.throws(() => contentFor(seed, 1, 100, PAGE_SIZE), RangeError);
  // Fast enough for the data path: 64 MiB in well under a second.
  const buf = new Uint8Array(1 << 20);
  const t0 = performance.now();
  for (let i = 0; i < 64; i++) contentFor(seed, i + 1, i * (1 << 20), 1 << 20);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `content generation took ${ms} ms for 64 MiB`);
  void buf;
});
