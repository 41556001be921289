// The simulator against reality (issue 6 "Validation"): the same image and the
// same requests migrated by real agents through the WAN emulator and by the
// simulator; time_total_s, wire_bytes and block_miss_rate must agree within
// 15 %. 64 MiB at 20 Mbit/s and 20 ms RTT keeps the real runs near 20 s each
// (the 256 MiB form of the issue is `npm run sim:validate`, ~2 min).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { validate, COMPARED } from '../../src/sim/validation.ts';
import { traceSlice } from '../../src/sim/trace-slice.ts';
import { log } from '../../src/util/log.ts';

const MiB = 2 ** 20;
const base = { size: 64 * MiB, bandwidthBps: 20e6, rttMs: 20, seed: 1, warmupMs: 5000, log };

test('postcopy, heavy: time, wire bytes and miss rate within 15 % of the real agents', async () => {
  const r = await validate({ ...base, algorithm: 'postcopy', workload: 'heavy' });
  assert.equal(r.sim.verified, true);
  // Enough post-copy reads for the miss rate to be a measurement, not noise.
  assert.ok(r.real.blocks_read_postcopy >= 300, `real run read ${r.real.blocks_read_postcopy} blocks in post-copy`);
  assert.ok(r.real.misses >= 30);
  for (const k of COMPARED) assert.ok(r.relError[k] <= 0.15, `${k}: sim ${r.sim[k]} vs real ${r.real[k]} (${(r.relError[k] * 100).toFixed(1)} %)`);
});

// A recorded guest trace (issue 18): the backup job of testing/traces/ from 10 s in (its first run
// under way), 60 s of it at 4x, folded into 16 MiB: a ~10 s real run. The whole trace at 256 MiB,
// with every measure within 15 %, is test/sim/validation.long.test.ts (npm run test:long).
// Its time is not compared: a ~5 s post-copy on a loaded machine is mostly the real agents' fixed
// costs (20 % off at load 14); the heavy case above compares time.
test('postcopy, a slice of the recorded backup trace: wire bytes within 15 %, the miss rate within its sampling noise', async () => {
  const records = traceSlice(fileURLToPath(new URL('../../testing/traces/backup.fiu.zst', import.meta.url)), 10, 80);
  const r = await validate({ ...base, size: 32 * MiB, algorithm: 'postcopy', workload: 'heavy', trace: { records, speed: 4 } });
  assert.equal(r.sim.verified, true);
  assert.ok(r.real.blocks_read_postcopy >= 200, `real run read ${r.real.blocks_read_postcopy} blocks in post-copy`);
  assert.ok(r.real.misses >= 20, `real run missed ${r.real.misses} blocks`);
  assert.ok(r.relError.wire_bytes <= 0.15, `wire_bytes: sim ${r.sim.wire_bytes} vs real ${r.real.wire_bytes} (${(r.relError.wire_bytes * 100).toFixed(1)} %)`);
  // A few hundred post-copy reads: 15 % of the miss rate is below a binomial's sampling noise here
  // (one standard error is ~13 % of the rate at ~50 misses). The two rates must agree within three
  // standard errors of their difference, i.e. be samples of one rate.
  const p = (r.real.misses + r.sim.misses) / (r.real.blocks_read_postcopy + r.sim.blocks_read_postcopy);
  const se = Math.sqrt(p * (1 - p) * (1 / r.real.blocks_read_postcopy + 1 / r.sim.blocks_read_postcopy));
  const diff = Math.abs(r.sim.block_miss_rate - r.real.block_miss_rate);
  assert.ok(diff <= 3 * se, `block_miss_rate: sim ${r.sim.block_miss_rate} vs real ${r.real.block_miss_rate} (difference ${diff.toFixed(4)}, 3 standard errors ${(3 * se).toFixed(4)})`);
});
