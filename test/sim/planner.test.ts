// The planner's scale model: a large image planned on every k-th block over a
// k-times slower link must predict what the full-size simulation gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan, observedProfile, scaleImage } from '../../src/sim/planner.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';

const MiB = 2 ** 20;

test('scale model (1/4) predicts the full-size simulation within 15 % (time and wire bytes)', async () => {
  const image = syntheticImage(512 * MiB, 65536, 9);
  const bw = 100e6;
  const profile = observedProfile({ watchMs: 10_000, dirtyBytesPerSec: 0.15 * bw / 8, changedBlocks: 1000, hotAreaShare: 0.1 }, bw);
  const p = await plan({ image, bandwidthBps: bw, rttMs: 20, profile, algorithms: ['precopy', 'flimcd'], planBytes: 128 * MiB });
  assert.equal(p.scale, 4);
  for (const algorithm of ['precopy', 'flimcd'] as const) {
    const params = resolveProfile(profile, { linkBitsPerSecond: bw, imageBytes: image.size, blockSize: 65536 }).params;
    const full = await simulate({ image, algorithm, bandwidthBps: bw, rttMs: 20, requests: new RequestGenerator(params, 1), warmupMs: 10_000 });
    const row = p.rows.find((r) => r.algorithm === algorithm)!;
    const dt = Math.abs(row.time_total_s - full.report.time_total_s) / full.report.time_total_s;
    const dw = Math.abs(row.wire_bytes - full.report.wire_bytes) / full.report.wire_bytes;
    assert.ok(dt < 0.15, `${algorithm} time: plan ${row.time_total_s} s, full ${full.report.time_total_s} s`);
    assert.ok(dw < 0.15, `${algorithm} wire: plan ${row.wire_bytes}, full ${full.report.wire_bytes}`);
  }
  assert.equal(p.recommended, 'flimcd');
});

test('scaleImage keeps every k-th block', () => {
  const image = syntheticImage(16 * MiB, 65536, 2);
  const s = scaleImage(image, 4);
  assert.equal(s.blocks, 64);
  for (let i = 0; i < s.blocks; i++) assert.equal(s.ids[i], image.ids[i * 4]);
});
