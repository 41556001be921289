// The simulator against reality on a whole recorded guest trace (issue 18 "Validation"): the backup
// job of testing/traces/ (a real guest re-reading the same files every few minutes), replayed by real
// agents through the WAN emulator and by the simulator, folded into 256 MiB at 4x its recorded speed
// (npm run sim:validate -- --trace testing/traces/backup.fiu.zst); time_total_s, wire_bytes and
// block_miss_rate within 15 %. About 2 min on a quiet machine. The real agents, the emulator and the
// workload share one process: on a loaded machine it is short of CPU, the emulated link runs below
// its rate and post-copy lasts longer than simulated (docs/design.md, "Not built yet", has the
// measurements), so run it on a quiet one. CI runs a 60 s slice (validation.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { validate, COMPARED } from '../../src/sim/validation.ts';
import { traceSlice } from '../../src/sim/trace-slice.ts';
import { log } from '../../src/util/log.ts';

test('postcopy, the whole recorded backup trace: time, wire bytes and miss rate within 15 % of the real agents', { timeout: 15 * 60_000 }, async () => {
  const records = traceSlice(fileURLToPath(new URL('../../testing/traces/backup.fiu.zst', import.meta.url)));
  const r = await validate({ size: 256 * 2 ** 20, bandwidthBps: 20e6, rttMs: 20, seed: 1, warmupMs: 5000, log, algorithm: 'postcopy', workload: 'heavy', trace: { records, speed: 4 } });
  assert.equal(r.sim.verified, true);
  assert.ok(r.real.misses >= 300, `real run missed ${r.real.misses} blocks`);
  for (const k of COMPARED) assert.ok(r.relError[k] <= 0.15, `${k}: sim ${r.sim[k]} vs real ${r.real[k]} (${(r.relError[k] * 100).toFixed(1)} %)`);
});
