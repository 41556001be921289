/**
 * The issue's validation case in full: 256 MiB at 20 Mbit/s and 20 ms RTT,
 * real agents through the WAN emulator vs the simulator, on the same image
 * and requests (src/sim/validation.ts). CI runs a 64 MiB form
 * (test/sim/validation.test.ts); this one takes a few minutes.
 *
 *   npm run -s sim:validate [-- --json] [--size 256MiB] [--algorithm postcopy] [--workload heavy] [--target-holds none|base] [--base-share 0.5]
 *   npm run -s sim:validate -- --trace testing/traces/backup.fiu.zst [--time-scale 4] [--trace-start 0s]
 *
 * --trace FILE: a recorded guest trace (testing/traces/) replaces the profile
 * in both runs, from --trace-start on, --time-scale times faster than
 * recorded, folded into --size as the simulator folds a trace.
 *
 * --target-holds base: the source image is a clone of a base image the target
 * holds (src/sim/base-image.ts), registered in the real target's replica index
 * with the `flimcd index add` code; the simulator models the same base.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { validate, COMPARED } from '../src/sim/validation.ts';
import { parseAlgorithm } from '../src/policy/algorithm.ts';
import { getProfile, type ProfileName } from '../src/workload/profiles.ts';
import { parseSize } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';
import { BASE_SHARE } from '../src/sim/base-image.ts';
import type { FiuRecord } from '../src/workload/fiu-trace.ts';
import { traceSlice } from '../src/sim/trace-slice.ts';
import { parseDuration } from '../src/util/units.ts';

const { values: v } = parseArgs({
  options: {
    json: { type: 'boolean', default: false }, size: { type: 'string', default: '256MiB' }, algorithm: { type: 'string', default: 'postcopy' }, workload: { type: 'string', default: 'heavy' },
    'target-holds': { type: 'string', default: 'none' }, 'base-share': { type: 'string', default: String(BASE_SHARE) },
    trace: { type: 'string' }, 'time-scale': { type: 'string', default: '4' }, 'trace-start': { type: 'string', default: '0s' },
  },
  strict: true,
});
const quiet = log.child({});
quiet.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';
const algorithm = parseAlgorithm(v.algorithm);
getProfile(v.workload);
if (v['target-holds'] !== 'none' && v['target-holds'] !== 'base') {
  process.stderr.write(`sim-validate: --target-holds must be none or base (got "${v['target-holds']}")\n`);
  process.exit(2);
}
const baseShare = v['target-holds'] === 'base' ? Number(v['base-share']) : undefined;
if (baseShare !== undefined && !(baseShare >= 0 && baseShare <= 1)) {
  process.stderr.write(`sim-validate: --base-share must be a fraction from 0 to 1 (got "${v['base-share']}")\n`);
  process.exit(2);
}
const speed = Number(v['time-scale']);
if (!(speed > 0)) {
  process.stderr.write(`sim-validate: --time-scale must be a positive number (got "${v['time-scale']}")\n`);
  process.exit(2);
}
let trace: { records: FiuRecord[]; speed: number } | undefined;
if (v.trace) {
  const records = traceSlice(v.trace, parseDuration(v['trace-start'], '--trace-start') / 1000);
  if (records.length === 0) {
    process.stderr.write(`sim-validate: ${v.trace} has no requests after --trace-start ${v['trace-start']}\n`);
    process.exit(2);
  }
  trace = { records, speed };
}
const r = await validate({ size: parseSize(v.size, '--size'), bandwidthBps: 20e6, rttMs: 20, algorithm, workload: v.workload as ProfileName, seed: 1, warmupMs: 5000, baseShare, trace, log: quiet });
const ok = COMPARED.every((k) => r.relError[k] <= 0.15);
const rows = COMPARED.map((k) => ({ measure: k, real: r.real[k], sim: r.sim[k], rel_error: Math.round(r.relError[k] * 1000) / 1000 }));
if (v.json) {
  process.stdout.write(JSON.stringify({ workload: v.trace ? `trace:${v.trace}` : v.workload, headline: { max_rel_error: Math.max(...rows.map((x) => x.rel_error)) }, within_15_percent: ok, rows, real_wall_s: r.realWall_s, sim_wall_s: r.simRun.wall_s, real_process_cpu_s: r.real.cpu.source_s, load_average: loadavg() }) + '\n');
} else {
  process.stdout.write(`${v.size} ${algorithm} ${v.trace ? `trace ${v.trace} (from ${v['trace-start']}, ${speed}x)` : v.workload}, 20 Mbit/s 20 ms, target holds ${baseShare === undefined ? 'nothing' : `the base image (${baseShare * 100} % shared), registered in its replica index`}: real run ${r.realWall_s.toFixed(1)} s, simulation ${r.simRun.wall_s.toFixed(2)} s\n`);
  for (const x of rows) process.stdout.write(`  ${x.measure.padEnd(16)} real ${String(x.real).padStart(12)}  sim ${String(x.sim).padStart(12)}  ${(x.rel_error * 100).toFixed(1)} %\n`);
  // A miss rate over a few dozen post-copy reads is a handful of events: show them.
  process.stdout.write(`  post-copy reads  real ${String(r.real.blocks_read_postcopy).padStart(12)}  sim ${String(r.sim.blocks_read_postcopy).padStart(12)}   (misses real ${r.real.misses}, sim ${r.sim.misses})\n`);
  process.stdout.write(`  from replica     real ${String(r.real.blocks.from_replica).padStart(12)}  sim ${String(r.sim.blocks.from_replica).padStart(12)}   (+ references: real ${r.real.blocks.from_replica + r.real.blocks.sent_reference}, sim ${r.sim.blocks.from_replica + r.sim.blocks.sent_reference})\n`);
  // Both real agents and the workload share one process (src/demo/): near 1 CPU-second a second, its event loop was saturated.
  process.stdout.write(`  real run's process CPU ${r.real.cpu.source_s.toFixed(1)} s over the migration's ${r.real.time_total_s.toFixed(1)} s (load average ${loadavg().map((x) => x.toFixed(1)).join(', ')})\n`);
  process.stdout.write(ok ? 'all within 15 %\n' : 'NOT all within 15 %\n');
}
if (!ok) process.exitCode = 1;
