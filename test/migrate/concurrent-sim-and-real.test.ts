// A simulation and a real migration at the same time in one process. The
// simulator's runtime names content by a token in a block's first bytes,
// "compresses" a tokened block to its modelled size, checksums only a frame's
// first bytes and hands out block buffers that share memory. The real image
// here is made of blocks that carry such tokens followed by distinct bytes: if
// any of that reached the real agents (a process-wide hook), their blocks
// would be deduplicated, truncated or overwritten, and the target image would
// differ from the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { simulate } from '../../src/sim/simulate.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';
import { Kind, stamp, TOKEN_BYTES } from '../../src/sim/content-model.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';
import { Prng } from '../../src/workload/prng.ts';
import { startAgentPair } from '../helpers/agent-pair.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { Phase } from '../../src/migrate/report.ts';

const MiB = 2 ** 20;
const BS = 65536;

/** Real bytes that look modelled: four tokens shared by all blocks, each followed by random bytes of its own. */
function tokenedImage(size: number): Buffer {
  const img = Buffer.allocUnsafe(size);
  new Prng(5).fill(img);
  for (let b = 0; b < size / BS; b++) stamp(img, b * BS, Kind.BLOCK, 1 + (b % 4), 1000);
  return img;
}

test('a simulation and a real migration run interleaved in one process; each verifies and the real target equals the source byte for byte', async (t) => {
  const dir = tempDir(t);
  const size = 16 * MiB;
  const src = join(dir, 'source.img');
  const original = tokenedImage(size);
  writeFileSync(src, original);
  // The bait is real: distinct blocks that share a token.
  assert.ok(original.subarray(0, TOKEN_BYTES).equals(original.subarray(4 * BS, 4 * BS + TOKEN_BYTES)));
  assert.ok(!original.subarray(0, BS).equals(original.subarray(4 * BS, 5 * BS)));

  // Interleaving, seen from both sides: real phase changes while the simulation runs,
  // and requests of the simulated VM taken while the real migration is under way.
  let simRunning = false;
  let realPhase: Phase = 'starting';
  const realPhasesDuringSim: Phase[] = [];
  let simRequestsDuringRealTransfer = 0;
  const pair = await startAgentPair({
    dir, sourceImage: src, algorithm: 'flimcd', bandwidthBps: 200e6, rttMs: 4, blockSize: BS,
    onPhase: (p) => {
      realPhase = p;
      if (simRunning) realPhasesDuringSim.push(p);
    },
  });
  t.after(() => pair.close());

  const simSize = 128 * MiB;
  const generator = new RequestGenerator(resolveProfile('moderate', { linkBitsPerSecond: 50e6, imageBytes: simSize, blockSize: BS }).params, 1);
  const requests = {
    next: () => {
      if (realPhase !== 'starting' && realPhase !== 'done') simRequestsDuringRealTransfer++;
      return generator.next();
    },
  };
  simRunning = true;
  const sim = simulate({ image: syntheticImage(simSize, BS, 1), algorithm: 'hybrid', bandwidthBps: 50e6, rttMs: 30, requests, warmupMs: 3000 }).finally(() => (simRunning = false));
  const real = pair.source.migrate().then(async (report) => {
    await pair.target.result();
    return report;
  });
  const [simulated, migrated] = await Promise.all([sim, real]);

  assert.equal(simulated.report.verified, true, 'the simulation verifies');
  assert.equal(migrated.verified, true, 'the real migration verifies');
  assert.ok(pair.imagesEqual(), 'the real target image equals the source byte for byte');
  assert.ok(migrated.blocks.sent_data > 0 && migrated.blocks.sent_reference === 0, `no real block travelled as a reference to another (${JSON.stringify(migrated.blocks)})`);
  assert.ok(realPhasesDuringSim.includes('precopy'), `the real migration moved data while the simulation ran (phases then: ${realPhasesDuringSim.join(', ')})`);
  assert.ok(simRequestsDuringRealTransfer > 0, 'the simulation ran while the real migration was under way');
});
