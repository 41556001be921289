// The true per-block read popularity (read-probability.ts) against what the
// generators actually produce: the modelled distribution must match a long
// sample's counts far better than area-level or uniform guesses do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestGenerator, type WorkloadRequest } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';
import { fiuBlockReadRates, generatorBlockReadRates } from '../../src/workload/read-probability.ts';
import { synthesizeFiuTrace } from '../../src/workload/fiu-synth.ts';
import { FiuReplay, parseFiuTrace } from '../../src/workload/fiu-trace.ts';

const BS = 65536;
const SIZE = 64 * 2 ** 20;

function counts(reqs: Iterable<WorkloadRequest>, n: number): Float64Array {
  const c = new Float64Array(n);
  for (const r of reqs) {
    if (r.op !== 'read') continue;
    for (let b = Math.floor(r.offset / BS); b <= Math.floor((r.offset + r.length - 1) / BS); b++) c[b]!++;
  }
  return c;
}

/** Total-variation distance between two non-negative vectors taken as distributions. */
function tv(a: Float64Array, b: Float64Array): number {
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) { sa += a[i]!; sb += b[i]!; }
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i]! / sa - b[i]! / sb);
  return d / 2;
}

for (const name of ['moderate', 'heavy'] as const) {
  test(`${name}: modelled block read rates match a 400k-request sample (rate and shape)`, () => {
    const params = resolveProfile(name, { linkBitsPerSecond: 100e6, imageBytes: SIZE, blockSize: BS }).params;
    const g = new RequestGenerator(params, 7);
    const model = generatorBlockReadRates(g, BS);
    const N = 400_000;
    const reqs: WorkloadRequest[] = [];
    for (let i = 0; i < N; i++) reqs.push(g.next()!);
    const seen = counts(reqs, model.length);
    let expected = 0;
    let got = 0;
    for (let b = 0; b < model.length; b++) { expected += model[b]! * N; got += seen[b]!; }
    assert.ok(Math.abs(got / expected - 1) < 0.02, `total block reads: sampled ${got}, modelled ${expected.toFixed(0)}`);
    const d = tv(model, seen);
    // Area-only model (every block of an area alike) and uniform: what the block model must beat.
    const perArea = 16;
    const areaOnly = new Float64Array(model.length);
    for (let b = 0; b < model.length; b++) {
      const a0 = Math.floor(b / perArea) * perArea;
      let s = 0;
      for (let j = 0; j < perArea; j++) s += model[a0 + j]!;
      areaOnly[b] = s / perArea;
    }
    const uniform = new Float64Array(model.length).fill(1);
    assert.ok(d < 0.03, `TV(model, sample) = ${d}`);
    assert.ok(d < tv(uniform, seen) / 5, `model ${d} vs uniform ${tv(uniform, seen)}`);
    // Sequential runs make a block's position in its area matter: the block model is closer than the area model.
    assert.ok(d < tv(areaOnly, seen), `model ${d} vs area-only ${tv(areaOnly, seen)}`);
  });
}

test('FIU synthesis: modelled block read rates match the trace the same options produce', () => {
  const o = { imageBytes: SIZE, seconds: 1500, seed: 391 };
  const model = fiuBlockReadRates(o, BS);
  const trace = synthesizeFiuTrace(o);
  const replay = new FiuReplay(parseFiuTrace(trace), { imageBytes: SIZE });
  const reqs: WorkloadRequest[] = [];
  for (let r = replay.next(); r; r = replay.next()) reqs.push(r);
  const seen = counts(reqs, model.length);
  const d = tv(model, seen);
  assert.ok(d < 0.05, `TV(model, trace) = ${d}`);
  assert.ok(d < tv(new Float64Array(model.length).fill(1), seen) / 5);
  // Another seed's layout is a different disk: the model must be tied to the options.
  assert.ok(tv(fiuBlockReadRates({ ...o, seed: 392 }, BS), seen) > 4 * d);
});
