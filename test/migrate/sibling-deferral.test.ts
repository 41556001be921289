// A target in a fleet answers "have" for content a sibling host is fetching over the WAN (an in-flight
// claim) and takes the copy when it lands. Its cut-over must not wait for such copies: the sibling may be
// in its own cut-over, waiting for content this migration claimed and receives only in post-copy (seen:
// fleets whose cut-overs waited for each other until claims were presumed lost, 15-30 s). Blocks still
// awaited at the cut-over are missing at the target until the copy lands, or, if none comes, the source's
// copy is fetched; either way the migration ends verified and byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, expectVerifiedExact } from '../helpers/migration-rig.ts';
import { until } from '../helpers/until.ts';
import { Prng } from '../../src/workload/prng.ts';
import { contentId } from '../../src/content/content-id.ts';
import type { RemoteContent, RemoteHit } from '../../src/migrate/remote-content.ts';

const BS = 65536;
const SIZE = 4 * 1024 * 1024;
const BLOCKS = SIZE / BS;
const IN_FLIGHT = 8;

test('a cut-over does not wait for siblings\' in-flight copies: they land in post-copy, or the source\'s copy is fetched', { timeout: 60_000 }, async () => {
  const now = Buffer.allocUnsafe(SIZE);
  new Prng(3).fill(now);
  const block = (b: number) => now.subarray(b * BS, (b + 1) * BS);
  // The first IN_FLIGHT blocks' content is "being fetched by a sibling": its copy comes only when released.
  const inFlight = new Map<string, number>();
  for (let b = 0; b < IN_FLIGHT; b++) inFlight.set(contentId(block(b)).subarray(0, 16).toString('hex'), b);
  const release: Array<(ok: boolean) => void> = [];
  const remote: RemoteContent = {
    lookup: async (_bs, ids) => ids.map((id) => (inFlight.has(Buffer.from(id).toString('hex')) ? { where: 'sibling', inFlight: true } : undefined)),
    fetch: (_bs, id, _hit: RemoteHit, into) => new Promise((resolve) => {
      const b = inFlight.get(Buffer.from(id).toString('hex'))!;
      release.push((ok) => {
        if (ok) block(b).copy(into);
        resolve(ok);
      });
    }),
    stale: () => undefined,
    publish: () => undefined,
  };
  const rig = buildRig({ algorithm: 'flimcd', size: SIZE, bandwidthBps: 200e6, delayMs: 2, seed: 9, remote, manualCutover: true });
  await rig.srcImage.write(0, now);
  await rig.start();
  try {
    const run = rig.source.run();
    await until(() => release.length === IN_FLIGHT && (rig.source.status().counts.offeredBlocks ?? 0) >= BLOCKS, 30_000, 'the in-flight blocks were never awaited');
    rig.source.requestCutover();
    // The target serves the VM while every sibling copy is still awaited.
    await until(() => rig.target.currentPhase === 'postcopy', 20_000, 'the cut-over waited for the siblings\' copies');
    const missing = rig.postcopy.missing;
    assert.ok(missing && missing.count >= IN_FLIGHT, `${missing?.count} blocks missing: the awaited ones must be`);
    for (let b = 0; b < IN_FLIGHT; b++) assert.equal(missing.get(b), true, `block ${b} missing until its copy lands`);
    // Half the copies land; the other half never come (the sibling gave up): those are fetched from the source.
    release.forEach((r, i) => r(i % 2 === 0));
    const report = await expectVerifiedExact(rig, run, now);
    assert.ok(report.blocks.demand >= IN_FLIGHT / 2, `${report.blocks.demand} blocks fetched on demand: the copies that never came must be`);
  } finally {
    rig.srcCh.close();
    rig.tgtCh.close();
  }
});
