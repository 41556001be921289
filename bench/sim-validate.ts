/**
 * The validation case in full: 256 MiB at 20 Mbit/s and 20 ms RTT,
 * real agents through the WAN emulator vs the simulator, on the same image
 * and requests (src/sim/validation.ts). CI runs a 64 MiB form
 * (test/sim/validation.test.ts); this one takes a few minutes.
 *
 *   npm run -s sim:validate [-- --json] [--size 256MiB] [--algorithm postcopy] [--workload heavy]
 */
import { parseArgs } from 'node:util';
import { validate, COMPARED } from '../src/sim/validation.ts';
import { parseAlgorithm } from '../src/policy/algorithm.ts';
import { getProfile, type ProfileName } from '../src/workload/profiles.ts';
import { parseSize } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';

const { values: v } = parseArgs({
  options: { json: { type: 'boolean', default: false }, size: { type: 'string', default: '256MiB' }, algorithm: { type: 'string', default: 'postcopy' }, workload: { type: 'string', default: 'heavy' } },
  strict: true,
});
const quiet = log.child({});
quiet.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';
const algorithm = parseAlgorithm(v.algorithm!);
getProfile(v.workload!);
const r = await validate({ size: parseSize(v.size!, '--size'), bandwidthBps: 20e6, rttMs: 20, algorithm, workload: v.workload as ProfileName, seed: 1, warmupMs: 5000, log: quiet });
const ok = COMPARED.every((k) => r.relError[k] <= 0.15);
const rows = COMPARED.map((k) => ({ measure: k, real: r.real[k], sim: r.sim[k], rel_error: Math.round(r.relError[k] * 1000) / 1000 }));
if (v.json) {
  process.stdout.write(JSON.stringify({ headline: { max_rel_error: Math.max(...rows.map((x) => x.rel_error)) }, within_15_percent: ok, rows, real_wall_s: r.realWall_s, sim_wall_s: r.simRun.wall_s }) + '\n');
} else {
  process.stdout.write(`${v.size} ${algorithm} ${v.workload}, 20 Mbit/s 20 ms: real run ${r.realWall_s.toFixed(1)} s, simulation ${r.simRun.wall_s.toFixed(2)} s\n`);
  for (const x of rows) process.stdout.write(`  ${x.measure.padEnd(16)} real ${String(x.real).padStart(12)}  sim ${String(x.sim).padStart(12)}  ${(x.rel_error * 100).toFixed(1)} %\n`);
  process.stdout.write(ok ? 'all within 15 %\n' : 'NOT all within 15 %\n');
}
if (!ok) process.exitCode = 1;
