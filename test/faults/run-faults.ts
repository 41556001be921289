/**
 * `npm run test:faults`: runs many seeded fault schedules (default 100) and
 * prints one line per schedule and a summary; any failing seed is printed
 * with the command that replays it alone.
 *
 *   npm run test:faults -- [--count 100] [--seed 1] [--jobs 2] [--json]
 *   npm run test:faults -- --seed 37 --count 1      # replay one schedule
 *   npm run test:faults -- --profile heavy          # the VM writes harder (light|moderate|heavy|mail)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describeSchedule, generateSchedule } from './schedule.ts';
import { runFaultSchedule, type FaultRunOptions, type FaultRunResult } from './fault-run.ts';
import type { ProfileName } from '../../src/workload/profiles.ts';
import { parseSize } from '../../src/util/units.ts';

export async function runMany(first: number, count: number, jobs: number, onResult?: (seed: number, r: FaultRunResult) => void, opts: FaultRunOptions = {}): Promise<Map<number, FaultRunResult>> {
  const results = new Map<number, FaultRunResult>();
  let next = first;
  const worker = async () => {
    while (next < first + count) {
      const seed = next++;
      const dir = mkdtempSync(join(tmpdir(), `flimcd-fault-${seed}-`));
      const r = await runFaultSchedule(generateSchedule(seed), dir, opts);
      // A failure keeps its directory (images, agent logs) for a look.
      if (r.ok) rmSync(dir, { recursive: true, force: true });
      results.set(seed, r);
      onResult?.(seed, r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const program = new Command()
    .name('test:faults')
    .description('Random fault schedules (link cuts, stalls, delays, kill -9 of either agent) against real agent processes; each must end verified and byte-exact.')
    .option('--seed <n>', 'first seed', '1')
    .option('--count <n>', 'number of schedules', '100')
    .option('--jobs <n>', 'schedules run at once', '2')
    .option('--profile <name>', 'the VM workload: light, moderate, heavy or mail', 'moderate')
    .option('--size <bytes>', 'image size (heavy needs 64MiB or more: it dirties 60 % of the link)', '16MiB')
    .option('--json', 'one JSON object at the end')
    .parse();
  const o = program.opts<{ seed: string; count: string; jobs: string; profile: string; size: string; json?: boolean }>();
  const first = Number(o.seed);
  const count = Number(o.count);
  const jobs = Number(o.jobs);
  if (![first, count, jobs].every((v) => Number.isInteger(v) && v >= 0) || count < 1 || jobs < 1) {
    process.stderr.write('test:faults: --seed, --count and --jobs take whole numbers (count, jobs >= 1)\n');
    process.exit(2);
  }
  let size: number;
  try {
    size = parseSize(o.size);
  } catch (e) {
    process.stderr.write(`test:faults: --size: ${(e as Error).message}\n`);
    process.exit(2);
  }
  if (size < 1 << 20 || size % 65536 !== 0) {
    process.stderr.write(`test:faults: --size ${o.size}: expected at least 1MiB, a multiple of 64KiB\n`);
    process.exit(2);
  }
  if (!['light', 'moderate', 'heavy', 'mail'].includes(o.profile)) {
    process.stderr.write(`test:faults: --profile ${o.profile}: expected light, moderate, heavy or mail\n`);
    process.exit(2);
  }
  const t0 = Date.now();
  const results = await runMany(first, count, jobs, (seed, r) => {
    if (o.json) return;
    const line = `${r.ok ? 'ok  ' : 'FAIL'} ${describeSchedule(generateSchedule(seed))} | fired ${r.fired.length}, missed ${r.missed.length}, restarts src ${r.restarts.source} tgt ${r.restarts.target}, ${(r.elapsedMs / 1000).toFixed(1)} s`;
    process.stdout.write(line + '\n');
    if (!r.ok) process.stdout.write(`     ${r.problems.join('\n     ')}\n     logs and images kept in ${r.dir}\n`);
  }, { profile: o.profile as ProfileName, size, timeoutMs: Math.max(90_000, (size / (16 << 20)) * 90_000) });
  const failed = [...results].filter(([, r]) => !r.ok).map(([s]) => s).sort((a, b) => a - b);
  const kinds: Record<string, number> = {};
  for (const r of results.values()) for (const f of r.fired) { const k = f.replace(/\(.*$/, ''); kinds[k] = (kinds[k] ?? 0) + 1; }
  const summary = { schedules: count, passed: count - failed.length, failed, faults_fired: kinds, elapsed_s: Math.round((Date.now() - t0) / 1000) };
  if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else {
    process.stdout.write(`\n${summary.passed}/${count} schedules verified and byte-exact in ${summary.elapsed_s} s; faults fired: ${JSON.stringify(kinds)}\n`);
    const profile = `${o.profile === 'moderate' ? '' : ` --profile ${o.profile}`}${o.size === '16MiB' ? '' : ` --size ${o.size}`}`;
    for (const s of failed) process.stdout.write(`FAILED seed ${s}: replay with  npm run test:faults -- --seed ${s} --count 1${profile}\n`);
  }
  process.exit(failed.length ? 1 : 0);
}
