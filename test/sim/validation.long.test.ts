// The simulator against reality on a whole recorded guest trace (issue 18 "Validation"): the backup
// job of testing/traces/ (a real guest re-reading the same files every few minutes), replayed by real
// agents through the WAN emulator and by the simulator, folded into 256 MiB at 4x its recorded speed
// (npm run sim:validate -- --trace testing/traces/backup.fiu.zst); time_total_s, wire_bytes and
// block_miss_rate within 15 %. About 2 min on a quiet machine. The real agents, the emulator and the
// workload share one process: on a loaded machine it is short of CPU, the emulated link runs below
// its rate and post-copy lasts longer than simulated (docs/design.md, "Not built yet", has the
// measurements), so run it on a quiet one. CI runs a 60 s slice (validation.test.ts).
// Also here (CI time): flimcd on the moderate profile, with and without a base in the target's index
// (64 MiB at 20 Mbit/s, about 20 s each).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { validate, COMPARED, relError } from '../../src/sim/validation.ts';
import { traceSlice } from '../../src/sim/trace-slice.ts';
import { log } from '../../src/util/log.ts';

test('postcopy, the whole recorded backup trace: time, wire bytes and miss rate within 15 % of the real agents', { timeout: 15 * 60_000 }, async () => {
  const records = traceSlice(fileURLToPath(new URL('../../testing/traces/backup.fiu.zst', import.meta.url)));
  const r = await validate({ size: 256 * 2 ** 20, bandwidthBps: 20e6, rttMs: 20, seed: 1, warmupMs: 5000, log, algorithm: 'postcopy', workload: 'heavy', trace: { records, speed: 4 } });
  assert.equal(r.sim.verified, true);
  assert.ok(r.real.misses >= 300, `real run missed ${r.real.misses} blocks`);
  for (const k of COMPARED) assert.ok(r.relError[k] <= 0.15, `${k}: sim ${r.sim[k]} vs real ${r.real[k]} (${(r.relError[k] * 100).toFixed(1)} %)`);
});

const MiB = 2 ** 20;
const base = { size: 64 * MiB, bandwidthBps: 20e6, rttMs: 20, seed: 1, warmupMs: 5000, log };

test('flimcd, moderate (dedup, zstd, pre-copy rounds, cut-over policy): time and wire bytes within 15 %', async () => {
  const r = await validate({ ...base, algorithm: 'flimcd', workload: 'moderate' });
  assert.equal(r.sim.verified, true);
  // A duplicate travels as a reference, or as an offer the target answers from what it holds
  // (which one depends on whether the original was acknowledged yet): either is dedup.
  const deduped = (b: typeof r.real.blocks) => b.sent_reference + b.from_replica;
  assert.ok(deduped(r.real.blocks) > 0 && deduped(r.sim.blocks) > 0, `dedup took part on both sides: real ${JSON.stringify(r.real.blocks)}, sim ${JSON.stringify(r.sim.blocks)}`);
  assert.ok(r.sim.compression.compressed_blocks > 0);
  // Its post-copy is a few blocks long and sees ~10-20 reads: a miss rate over so few reads is not compared.
  for (const k of ['time_total_s', 'wire_bytes'] as const) {
    assert.ok(r.relError[k] <= 0.15, `${k}: sim ${r.sim[k]} vs real ${r.real[k]} (${(r.relError[k] * 100).toFixed(1)} %)`);
  }
});

test('flimcd, moderate, the target holding the base image in its replica index: time and wire bytes within 15 %', async () => {
  const r = await validate({ ...base, algorithm: 'flimcd', workload: 'moderate', baseShare: 0.5 });
  assert.equal(r.sim.verified, true);
  for (const k of ['time_total_s', 'wire_bytes'] as const) {
    assert.ok(r.relError[k] <= 0.15, `${k}: sim ${r.sim[k]} vs real ${r.real[k]} (${(r.relError[k] * 100).toFixed(1)} %)`);
  }
  // The base really was used on both sides, and as many blocks travelled without their data. Which
  // of two forms they took is timing: a repeated block offered before the first answer is a replica
  // hit, after it a reference (the simulator reads instantly, so it offers more before answers come).
  const noData = (x: typeof r.real) => x.blocks.from_replica + x.blocks.sent_reference;
  assert.ok(r.real.blocks.from_replica > 100, `real took ${r.real.blocks.from_replica} blocks from the base`);
  assert.ok(relError(noData(r.sim), noData(r.real)) <= 0.15, `blocks sent without data: sim ${noData(r.sim)} vs real ${noData(r.real)}`);
});
