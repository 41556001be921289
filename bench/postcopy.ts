/**
 * Post-copy miss benchmark (issue 5): how much hot-area ordering and prefetch
 * cut the block miss rate of post-copy, against plain post-copy, in the same run.
 *
 *   npm run -s bench:postcopy [-- --json] [--runs N] [--size 128MiB] [--quick]
 *   npx tsx bench/postcopy.ts --quick
 *
 * Method
 * - Each sample is a whole local migration (src/demo/local-migration.ts): a
 *   generated image, real source and target agents, the WAN emulator between
 *   them (default 100 Mbit/s, 30 ms RTT), and a workload that runs against the
 *   source export and follows the VM to the target export at cut-over.
 * - Algorithm `postcopy` (immediate cut-over) in four variants: plain (block-
 *   order push, no prefetch), +hot (read-hot-first push), +prefetch, both.
 * - The workload runs `--warmup` seconds (default 10) at the source before the
 *   migration starts: the source agent sits on the VM's I/O path all along, so
 *   its heat map has seen the VM before an operator starts a migration.
 * - Workloads: the `moderate` and `mail` profiles (resolved against the link
 *   as docs/design.md pins them, untouched), and a replay of an FIU-format trace.
 *   No real FIU trace is available offline: the trace is synthetic, generated
 *   deterministically by src/workload/fiu-synth.ts (files read sequentially
 *   after their metadata page, a Zipf-hot database region, a log), and
 *   replayed with src/workload/fiu-trace.ts like a real one would be.
 * - block_miss_rate as docs/design.md defines it (blocks read at the target that
 *   were absent when read / all blocks read at the target during post-copy).
 *   Every run must verify (Merkle roots and the workload's content model).
 * - Runs: `--runs` repetitions (default 3); repetition k uses seed k for every
 *   variant (the same requests), and the variant order rotates per repetition
 *   so drift on a shared machine spreads over all of them. Medians reported.
 * - headline.hot / .prefetch / .both = the worst (largest) over the workloads
 *   of median(variant miss rate) / median(plain miss rate). Below 1 is better;
 *   the goal for `both` is at most 0.40.
 * - Beside the measurements, the push-order model (bench/postcopy-model.ts)
 *   on the same requests, seeds and link: `bound.source_block_heat` is what
 *   the hot order's plan does there, `bound.oracle_probability` the best any
 *   order (or prefetch) that knows only the past can do on these i.i.d. reads.
 *   When the oracle's worst ratio is above 0.40, `goal.below_model_bound` says
 *   the goal is out of reach on these workloads, whatever the policy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLocalMigration } from '../src/demo/local-migration.ts';
import { formatBytes } from '../src/util/units.ts';
import { benchArgs } from './bench-args.ts';
import { modelPushOrders } from './postcopy-model.ts';
import { log } from '../src/util/log.ts';
import { synthesizeFiuTrace } from '../src/workload/fiu-synth.ts';
import { FiuReplay, parseFiuTrace } from '../src/workload/fiu-trace.ts';
import type { Features } from '../src/policy/algorithm.ts';
import { median } from './stats.ts';
import { ratioToBaseline, worstRatio } from './headline.ts';

const VARIANTS = ['postcopy', 'hot', 'prefetch', 'both'] as const;
type Variant = (typeof VARIANTS)[number];
const FEATURES: Record<Variant, Features> = {
  // Dedup and compression stay off: this measures misses, and plain post-copy has neither.
  postcopy: { dedup: false, compress: false, hotOrder: false, prefetch: false },
  hot: { dedup: false, compress: false, hotOrder: true, prefetch: false },
  prefetch: { dedup: false, compress: false, hotOrder: false, prefetch: true },
  both: { dedup: false, compress: false, hotOrder: true, prefetch: true },
};
const WORKLOADS = ['moderate', 'mail', 'fiu'] as const;
type Workload = (typeof WORKLOADS)[number];
const GOAL_BOTH = 0.4;

interface Options {
  json: boolean;
  runs: number;
  size: number;
  bandwidthBps: number;
  rttMs: number;
  warmupMs: number;
  workloads: Workload[];
  keepTrace: string | undefined;
}

interface Sample {
  workload: Workload;
  variant: Variant;
  run: number;
  block_miss_rate: number;
  misses: number;
  blocks_read: number;
  prefetch_hits: number;
  prefetch_wasted_bytes: number;
  miss_p50_ms: number | null;
  miss_p99_ms: number | null;
  time_postcopy_s: number;
  verified: boolean;
}

const USAGE = `usage: tsx bench/postcopy.ts [--json] [--runs N] [--size SIZE] [--quick]
                          [--bandwidth RATE] [--rtt MS] [--warmup S] [--only moderate,mail,fiu] [--trace-out FILE]
  --quick        64 MiB, 1 run, 5 s warm-up (smoke run)
  --runs N       repetitions per workload and variant; medians are reported (default 3)
  --size SIZE    image size (default 128MiB)
  --bandwidth    emulated link rate (default 100Mbit)
  --rtt MS       emulated round-trip time (default 30)
  --warmup S     seconds the workload runs at the source before the migration starts (default 10)
  --trace-out F  also write the synthetic FIU-format trace to F`;

function parseOptions(argv: string[]): Options {
  const args = benchArgs('postcopy', USAGE, {
    json: { type: 'boolean' },
    quick: { type: 'boolean' },
    runs: { type: 'string' },
    size: { type: 'string' },
    bandwidth: { type: 'string' },
    rtt: { type: 'string' },
    warmup: { type: 'string' },
    only: { type: 'string' },
    'trace-out': { type: 'string' },
  }, argv);
  const v = args.values;
  const quick = v.quick ?? false;
  const size = args.size(v.size, quick ? 64 * 1024 ** 2 : 128 * 1024 ** 2, '--size');
  if (size < 32 * 1024 ** 2 || size % (1024 * 1024) !== 0) args.fail('--size must be a multiple of 1 MiB and at least 32 MiB');
  return {
    json: v.json ?? false,
    runs: args.int(v.runs, quick ? 1 : 3, '--runs'),
    size,
    bandwidthBps: args.rate(v.bandwidth, 100e6, '--bandwidth'),
    rttMs: args.num(v.rtt, 30, '--rtt', 0),
    warmupMs: args.num(v.warmup, quick ? 5 : 10, '--warmup', 0) * 1000,
    workloads: args.list(v.only, WORKLOADS, '--only'),
    keepTrace: v['trace-out'],
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const quiet = log.child({ bench: 'postcopy' }, { level: 'warn' });
  // Long enough for warm-up plus a slow post-copy: the push alone takes size / rate.
  const traceSeconds = Math.ceil(o.warmupMs / 1000 + 4 * ((o.size * 8) / o.bandwidthBps) + 60);
  const trace = o.workloads.includes('fiu') ? synthesizeFiuTrace({ imageBytes: o.size, seconds: traceSeconds, seed: 391 }) : [];
  if (o.keepTrace && trace.length) writeFileSync(o.keepTrace, trace.join('\n') + '\n');
  const traceRecords = trace.length ? [...parseFiuTrace(trace)] : [];
  const samples: Sample[] = [];
  const started = Date.now();
  const total = o.runs * o.workloads.length * VARIANTS.length;
  for (let run = 1; run <= o.runs; run++) {
    for (const workload of o.workloads) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const variant = VARIANTS[(i + run - 1) % VARIANTS.length]!;
        const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-postcopy-'));
        try {
          const r = await runLocalMigration({
            dir, size: o.size, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs, algorithm: 'postcopy', features: FEATURES[variant],
            workload: workload === 'fiu' ? 'moderate' : workload, requests: workload === 'fiu' ? new FiuReplay(traceRecords, { imageBytes: o.size }) : undefined,
            warmupMs: o.warmupMs, blockSize: 65536, seed: run, log: quiet,
          });
          const rep = r.report;
          const s: Sample = {
            workload, variant, run, block_miss_rate: rep.block_miss_rate, misses: rep.misses, blocks_read: rep.blocks_read_postcopy,
            prefetch_hits: rep.prefetch_hits, prefetch_wasted_bytes: rep.prefetch_wasted_bytes, miss_p50_ms: rep.miss_latency_ms.p50,
            miss_p99_ms: rep.miss_latency_ms.p99, time_postcopy_s: rep.time_postcopy_s, verified: rep.verified && r.workloadVerified,
          };
          samples.push(s);
          if (!o.json) {
            process.stderr.write(`[${samples.length}/${total}, ${Math.round((Date.now() - started) / 1000)} s] run ${run} ${workload} ${variant}: miss rate ${(s.block_miss_rate * 100).toFixed(2)} % (${s.misses}/${s.blocks_read}), prefetch hits ${s.prefetch_hits}, verified ${s.verified}\n`);
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }

  const medians: Record<string, Record<string, Record<string, number | null>>> = {};
  const ratios: Record<string, Record<string, number>> = {};
  for (const w of o.workloads) {
    medians[w] = {};
    ratios[w] = {};
    for (const v of VARIANTS) {
      const xs = samples.filter((s) => s.workload === w && s.variant === v);
      const med = (k: keyof Sample) => {
        const vals = xs.map((s) => s[k]).filter((x): x is number => typeof x === 'number');
        return vals.length ? round(median(vals), 6) : null;
      };
      medians[w][v] = {
        block_miss_rate: med('block_miss_rate'), misses: med('misses'), blocks_read: med('blocks_read'), prefetch_hits: med('prefetch_hits'),
        prefetch_wasted_bytes: med('prefetch_wasted_bytes'), miss_p50_ms: med('miss_p50_ms'), miss_p99_ms: med('miss_p99_ms'), time_postcopy_s: med('time_postcopy_s'),
      };
    }
    const base = medians[w].postcopy!.block_miss_rate ?? 0;
    for (const v of VARIANTS) ratios[w][v] = round(ratioToBaseline(medians[w][v]!.block_miss_rate ?? 0, base), 3);
  }
  const worst = (v: Variant) => round(worstRatio(o.workloads.map((w) => ratios[w]![v]!)), 3);
  const headline = { hot: worst('hot'), prefetch: worst('prefetch'), both: worst('both') };
  const allVerified = samples.every((s) => s.verified);
  // The model of the same workloads, seeds and link (bench/postcopy-model.ts): what push order can reach at best.
  const model = await modelPushOrders({ runs: o.runs, size: o.size, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs, queueMs: 40, warmupMs: o.warmupMs, only: o.workloads });
  const pick = (ord: 'source block heat' | 'oracle probability') => Object.fromEntries(o.workloads.map((w) => [w, model.ratios[w]![ord]]));
  const bound = {
    model: true,
    source_block_heat: pick('source block heat'),
    oracle_probability: pick('oracle probability'),
    worst_oracle_probability: model.headline.oracle_probability!,
  };
  const result = {
    benchmark: 'postcopy',
    headline,
    goal: { both: GOAL_BOTH, met: headline.both <= GOAL_BOTH, below_model_bound: GOAL_BOTH < bound.worst_oracle_probability },
    bound,
    verified: allVerified,
    medians,
    ratios,
    config: {
      image_bytes: o.size, block_size: 65536, bandwidth_bps: o.bandwidthBps, rtt_ms: o.rttMs, warmup_s: o.warmupMs / 1000, runs: o.runs,
      algorithm: 'postcopy', fiu_trace: trace.length ? { synthetic: true, requests: trace.length, seconds: traceSeconds, generator: 'src/workload/fiu-synth.ts seed 391' } : undefined,
    },
    samples,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    const pct = (x: number | null | undefined) => (typeof x === 'number' ? `${(x * 100).toFixed(2)} %` : '–');
    const rows: string[][] = [['workload', ...VARIANTS.map((v) => `${v} miss rate`), ...VARIANTS.slice(1).map((v) => `${v}/plain`)]];
    for (const w of o.workloads) {
      rows.push([w, ...VARIANTS.map((v) => pct(medians[w]![v]!.block_miss_rate)), ...VARIANTS.slice(1).map((v) => ratios[w]![v]!.toFixed(2))]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    process.stdout.write(`\npost-copy block miss rate, median of ${o.runs} run(s): ${formatBytes(o.size)} image, ${o.bandwidthBps / 1e6} Mbit/s, ${o.rttMs} ms RTT, ${o.warmupMs / 1000} s warm-up\n\n`);
    for (const r of rows) process.stdout.write(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ') + '\n');
    process.stdout.write('\nmisses / blocks read, prefetch hits, miss latency p50 / p99 (ms):\n');
    for (const w of o.workloads) {
      for (const v of VARIANTS) {
        const m = medians[w]![v]!;
        process.stdout.write(`  ${w.padEnd(8)} ${v.padEnd(8)} ${m.misses}/${m.blocks_read}  hits ${m.prefetch_hits}  wasted ${formatBytes(m.prefetch_wasted_bytes ?? 0)}  p50 ${m.miss_p50_ms ?? '–'}  p99 ${m.miss_p99_ms ?? '–'}\n`);
      }
    }
    process.stdout.write(`\nheadline (worst ratio over workloads): hot ${headline.hot}, prefetch ${headline.prefetch}, both ${headline.both} (goal <= ${GOAL_BOTH}: ${headline.both <= GOAL_BOTH ? 'met' : 'NOT met'})\n`);
    process.stdout.write(`\nmodel of the same requests and link (bench/postcopy-model.ts, not a measurement), ratio to plain block order:\n`);
    for (const w of o.workloads) {
      process.stdout.write(`  ${w.padEnd(8)} source block heat (what hot order does) ${bound.source_block_heat[w]}  oracle probability (best order knowing only the past) ${bound.oracle_probability[w]}  measured both ${ratios[w]!.both}\n`);
    }
    process.stdout.write(`  worst oracle ratio ${bound.worst_oracle_probability}${bound.worst_oracle_probability > GOAL_BOTH ? `: above the goal of ${GOAL_BOTH}; in the model no order knowing only the past reaches it on these workloads (single runs scatter around the model)` : ''}\n`);
    process.stdout.write(`all runs verified: ${allVerified}\n`);
    if (trace.length) process.stdout.write(`fiu: a synthetic FIU-format trace (${trace.length} requests, src/workload/fiu-synth.ts), not a real one\n`);
  }
  if (!allVerified) process.exitCode = 1;
}

await main();
