// A 1 TiB sparse image holding about 1 GiB of used-disk content migrates with each agent's peak
// RSS (VmHWM, read as the process exits) at most 512 MiB: no per-block structure, no message and
// no hashing pass grows with the image's size. bench:terabyte measures a few GiB of data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { migrateWithAgents } from '../../testing/terabyte/agents.ts';
import { tempDir } from '../helpers/tmp.ts';

const RSS_LIMIT_MIB = 512;

test('a 1 TiB sparse image with 1 GiB of content migrates with at most 512 MiB RSS on each agent', { timeout: 240_000 }, async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  // A used disk's first GiB (text-like, random, repeated blocks and holes), then a terabyte of holes.
  await generateImage(src, 2 ** 30, { seed: 11 });
  truncateSync(src, 2 ** 40);
  const run = await migrateWithAgents({ dir, source: src, target: join(dir, 'dst.img'), timeoutMs: 230_000 });
  const r = run.report;
  t.diagnostic(`1 TiB: wall ${(run.wallMs / 1000).toFixed(1)} s, time_precopy_s ${String(r.time_precopy_s)}, peak RSS source ${run.peakRssMiB.source.toFixed(0)} MiB, target ${run.peakRssMiB.target.toFixed(0)} MiB`);
  assert.equal(r.verified, true);
  assert.equal(r.image_bytes, 2 ** 40);
  assert.ok(run.peakRssMiB.source <= RSS_LIMIT_MIB, `source peak RSS ${run.peakRssMiB.source.toFixed(0)} MiB`);
  assert.ok(run.peakRssMiB.target <= RSS_LIMIT_MIB, `target peak RSS ${run.peakRssMiB.target.toFixed(0)} MiB`);
});
