// "The destination holds the base image the VM was cloned from": the model's
// share holds across content kinds, the target finds the base's content
// through its replica index (LocalContent's real lookup and re-hash), and only
// the algorithm with dedup uses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';
import { BASE_SHARE, baseOf, writeBaseFile } from '../../src/sim/base-image.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';

const MiB = 2 ** 20;
const BS = 65536;

test('baseOf: the base shares about BASE_SHARE of the non-zero blocks, for compressible and incompressible blocks alike', () => {
  const img = syntheticImage(512 * MiB, BS, 2);
  const base = baseOf(img, BASE_SHARE, 2);
  const kinds = { text: [0, 0], random: [0, 0] };
  for (let b = 0; b < img.blocks; b++) {
    if (img.ids[b] === 0) {
      assert.equal(base.ids[b], 0);
      continue;
    }
    const k = img.zsizes[b] ? kinds.text : kinds.random;
    k[1]!++;
    if (base.ids[b] === img.ids[b]) k[0]!++;
    else assert.equal(base.zsizes[b], img.zsizes[b], 'a diverged block keeps its kind');
  }
  for (const [name, [shared, all]] of Object.entries(kinds)) {
    assert.ok(all! > 500, name);
    assert.ok(Math.abs(shared! / all! - BASE_SHARE) < 0.06, `${name}: ${shared}/${all} shared`);
  }
});

test('a target holding the base: flimcd takes blocks from the replica index and sends less; precopy is unchanged', async () => {
  const size = 64 * MiB;
  const bw = 50e6;
  const img = syntheticImage(size, BS, 1);
  const base = baseOf(img);
  const params = resolveProfile('moderate', { linkBitsPerSecond: bw, imageBytes: size, blockSize: BS }).params;
  const run = (algorithm: 'flimcd' | 'precopy', withBase: boolean) =>
    simulate({ image: img, baseImage: withBase ? base : undefined, algorithm, bandwidthBps: bw, rttMs: 30, requests: new RequestGenerator(params, 1), warmupMs: 3000 });
  const [fb, fe, pb, pe] = [await run('flimcd', true), await run('flimcd', false), await run('precopy', true), await run('precopy', false)];
  for (const r of [fb, fe, pb, pe]) assert.equal(r.report.verified, true);
  // About half of the non-zero blocks come from the base (minus those the VM rewrote, plus repeats).
  const dataBlocks = img.dataBlocks;
  assert.ok(fb.report.blocks.from_replica > 0.3 * dataBlocks, `from replica ${fb.report.blocks.from_replica} of ${dataBlocks}`);
  assert.equal(fe.report.blocks.from_replica, 0);
  assert.ok(fb.report.wire_bytes < 0.75 * fe.report.wire_bytes, `${fb.report.wire_bytes} vs ${fe.report.wire_bytes}`);
  assert.ok(fb.report.time_total_s < fe.report.time_total_s);
  // The baseline cannot know what the target holds: same bytes, same time.
  assert.equal(pb.report.wire_bytes, pe.report.wire_bytes);
  assert.equal(pb.report.time_total_s, pe.report.time_total_s);
  assert.equal(pb.report.blocks.from_replica, 0);
});

test('writeBaseFile: a real base file sharing the chosen blocks byte for byte, the others changed', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 96 * MiB, { seed: 5 });
  const r = await writeBaseFile(img, join(dir, 'base.img'), BS, 0.5, 5);
  const a = readFileSync(img);
  const b = readFileSync(join(dir, 'base.img'));
  let same = 0;
  let differ = 0;
  for (let o = 0; o < a.length; o += BS) {
    const x = a.subarray(o, o + BS);
    if (x.every((v) => v === 0)) continue;
    if (x.equals(b.subarray(o, o + BS))) same++;
    else differ++;
  }
  assert.equal(same, r.shared);
  assert.equal(differ, r.changed);
  assert.ok(Math.abs(same / (same + differ) - 0.5) < 0.12, `${same} shared, ${differ} changed`);
});
