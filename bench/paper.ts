/**
 * The FlimCD paper's comparison, on the simulator (issue 6).
 *
 *   npm run -s bench:paper [-- --json] [--quick] [--image-size 2GiB] [--runs N] [--out reports/paper]
 *
 * Method
 * - Every cell is a simulated migration (src/sim/simulate.ts): the real
 *   engines and policies on a virtual clock, a modelled link (bandwidth,
 *   delay) and a modelled disk (src/sim/sim-disk.ts). The simulator is
 *   validated against real agents by test/sim/validation.test.ts.
 * - Algorithms: precopy, postcopy, hybrid, flimcd, and flimcd with each
 *   optimization off in turn (dedup, zstd, hot-order, prefetch).
 * - Workloads: the light, moderate, heavy and mail profiles, each resolved
 *   against the cell's link as design.md pins them (dirtying 5 / 20 / 60 / 20 %
 *   of the link), with a 10 s warm-up before the migration starts.
 * - Links: {100 Mbit/s, 1 Gbit/s} × {10, 50, 150 ms RTT}.
 * - Image: synthetic, image-gen's mix (30 % holes, 10 % repeated blocks, 40 %
 *   text, 20 % random), default 1 GiB: 192 cells in ~10-15 min on this
 *   machine (the paper's 20 GiB takes ~1 min per cell; --image-size).
 * - Runs: --runs seeds per cell (default 1: the simulator is deterministic for
 *   a seed); every number is the median over seeds.
 * - Guest I/O slowdown: mean response time of the VM's requests arriving
 *   during the migration over that of the requests in the warm-up before it
 *   (src/sim/sim-vm.ts).
 * - Headline: time_flimcd_over_precopy_moderate = median over the six links of
 *   time(flimcd)/time(precopy) on moderate (paper 0.357, goal ≤ 0.30);
 *   miss_flimcd_over_postcopy = median over all workload × link cells of
 *   miss rate(flimcd)/miss rate(postcopy) (paper ≤ 0.51, goal ≤ 0.40).
 * - Output: --out folder (default reports/paper): report.md (headline, then
 *   the table), results.json, and SVG + PNG charts of migration time, wire
 *   bytes, downtime, post-copy miss rate and guest I/O slowdown.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './stats.ts';
import { renderChart } from './charts.ts';
import { syntheticImage } from '../src/sim/image-model.ts';
import { paperVariants, parseWorkload, runScenario, summarize, type SummaryRow } from '../src/sim/scenario.ts';
import { formatBitRate, formatBytes, parseSize } from '../src/util/units.ts';

const WORKLOADS = ['light', 'moderate', 'heavy', 'mail'] as const;
const BANDWIDTHS = [100e6, 1e9];
const RTTS = [10, 50, 150];
const PAPER = { time: 0.357, miss: 0.51 };
const GOAL = { time: 0.3, miss: 0.4 };

interface Cell {
  workload: string;
  link: string;
  bandwidth_bps: number;
  rtt_ms: number;
  algorithm: string;
  runs: number;
  verified: boolean;
  time_total_s: number;
  time_precopy_s: number;
  time_postcopy_s: number;
  downtime_ms: number;
  wire_bytes: number;
  block_miss_rate: number;
  guest_slowdown: number | null;
  error?: string;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench/paper: ${msg}\n`);
  process.stderr.write(`usage: tsx bench/paper.ts [--json] [--quick] [--image-size SIZE] [--runs N] [--out DIR]
  --quick        512 MiB image, links 100Mbit/50ms and 1Gbit/10ms only (smoke run)
  --image-size   synthetic image size (default 1GiB)
  --runs N       seeds per cell; medians reported (default 1)
  --out DIR      report folder (default reports/paper)
  --json         print the table as one JSON object (headline first)
`);
  process.exit(2);
}

function linkName(bw: number, rtt: number): string {
  return `${formatBitRate(bw)} ${rtt} ms`;
}

async function main(): Promise<void> {
  let v;
  try {
    v = parseArgs({
      options: {
        json: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false }, 'image-size': { type: 'string' },
        runs: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    usage((e as Error).message);
  }
  if (v.help) usage();
  const size = parseSize(v['image-size'] ?? (v.quick ? '512MiB' : '1GiB'), '--image-size');
  const runs = Number(v.runs ?? 1);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) usage('--runs must be an integer from 1 to 20');
  const out = v.out ?? 'reports/paper';
  const links = v.quick ? [[100e6, 50], [1e9, 10]] : BANDWIDTHS.flatMap((bw) => RTTS.map((rtt) => [bw, rtt]));
  const variants = paperVariants();
  const bs = 65536;
  const images = Array.from({ length: runs }, (_, i) => syntheticImage(size, bs, i + 1));
  const cells: Cell[] = [];
  const wall0 = performance.now();
  const total = links.length * WORKLOADS.length * variants.length;
  for (const [bw, rtt] of links as Array<[number, number]>) {
    for (const w of WORKLOADS) {
      for (const variant of variants) {
        const samples: SummaryRow[] = [];
        let error: string | undefined;
        for (let run = 0; run < runs; run++) {
          try {
            const workload = parseWorkload({ spec: w, imageBytes: size, bandwidthBps: bw, blockSize: bs, seed: run + 1 });
            samples.push(summarize(variant.name, await runScenario({ image: images[run]!, workload, variant, bandwidthBps: bw, rttMs: rtt, warmupMs: 10_000 })));
          } catch (e) {
            error = (e as Error).message;
            break;
          }
        }
        const m = (k: keyof SummaryRow) => (samples.length ? median(samples.map((s) => Number(s[k] ?? NaN))) : NaN);
        const slow = samples.map((s) => s.guest_slowdown).filter((x): x is number => x !== null);
        cells.push({
          workload: w, link: linkName(bw, rtt), bandwidth_bps: bw, rtt_ms: rtt, algorithm: variant.name, runs: samples.length,
          verified: samples.length === runs && samples.every((s) => s.verified),
          time_total_s: m('time_total_s'), time_precopy_s: m('time_precopy_s'), time_postcopy_s: m('time_postcopy_s'), downtime_ms: m('downtime_ms'),
          wire_bytes: m('wire_bytes'), block_miss_rate: m('block_miss_rate'), guest_slowdown: slow.length ? median(slow) : null,
          ...(error ? { error } : {}),
        });
        if (!v.json) process.stderr.write(`\r  ${cells.length}/${total} cells, ${((performance.now() - wall0) / 1000).toFixed(0)} s   `);
      }
    }
  }
  if (!v.json) process.stderr.write('\n');

  const cell = (w: string, link: string, a: string) => cells.find((c) => c.workload === w && c.link === link && c.algorithm === a);
  const linkNames = [...new Set(cells.map((c) => c.link))];
  const timeRatios = linkNames.map((l) => (cell('moderate', l, 'flimcd')?.time_total_s ?? NaN) / (cell('moderate', l, 'precopy')?.time_total_s ?? NaN)).filter(Number.isFinite);
  const missRatios: number[] = [];
  for (const w of WORKLOADS) {
    for (const l of linkNames) {
      const p = cell(w, l, 'postcopy')?.block_miss_rate;
      const f = cell(w, l, 'flimcd')?.block_miss_rate;
      if (p !== undefined && f !== undefined && p > 0 && Number.isFinite(f)) missRatios.push(f / p);
    }
  }
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const headline = {
    time_flimcd_over_precopy_moderate: timeRatios.length ? r3(median(timeRatios)) : null,
    miss_flimcd_over_postcopy: missRatios.length ? r3(median(missRatios)) : null,
    paper: { time_flimcd_over_precopy_moderate: PAPER.time, miss_flimcd_over_postcopy: PAPER.miss },
    goal: { time_flimcd_over_precopy_moderate: GOAL.time, miss_flimcd_over_postcopy: GOAL.miss },
  };
  const setup = { image_bytes: size, block_size: bs, runs, warmup_s: 10, links: linkNames, workloads: [...WORKLOADS], algorithms: variants.map((x) => x.name), wall_s: Math.round((performance.now() - wall0) / 1000) };
  const allVerified = cells.every((c) => c.verified);

  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), JSON.stringify({ headline, setup, cells }, null, 2) + '\n');
  const charts: Array<[string, keyof Cell, string, boolean]> = [
    ['time', 'time_total_s', 'migration time (s)', true],
    ['wire', 'wire_bytes', 'wire bytes', true],
    ['downtime', 'downtime_ms', 'downtime (ms)', true],
    ['miss-rate', 'block_miss_rate', 'post-copy block miss rate', false],
    ['slowdown', 'guest_slowdown', 'guest I/O slowdown (x)', true],
  ];
  for (const [name, field, yTitle, log] of charts) {
    const rows = cells.filter((c) => c[field] !== null && Number.isFinite(c[field] as number)).map((c) => ({ ...c }) as Record<string, unknown>);
    const { svg, png } = await renderChart({ title: `${yTitle} — ${formatBytes(size)} image`, field, yTitle, rows, x: 'workload', bar: 'algorithm', column: 'link', barOrder: variants.map((x) => x.name), xOrder: [...WORKLOADS], columnOrder: linkNames, logScale: log });
    writeFileSync(join(out, `${name}.svg`), svg);
    writeFileSync(join(out, `${name}.png`), png);
  }
  const md: string[] = [];
  md.push('# FlimCD paper comparison (simulated)', '');
  md.push('## Headline', '');
  md.push('| ratio | measured | paper | goal |', '|---|---|---|---|');
  md.push(`| time flimcd / precopy, moderate (median over links) | ${headline.time_flimcd_over_precopy_moderate ?? 'n/a'} | ${PAPER.time} | ≤ ${GOAL.time} |`);
  md.push(`| miss rate flimcd / postcopy (median over cells) | ${headline.miss_flimcd_over_postcopy ?? 'n/a'} | ≤ ${PAPER.miss} | ≤ ${GOAL.miss} |`);
  md.push('', `Image ${formatBytes(size)} (synthetic, image-gen mix), block 64 KiB, ${runs} seed(s) per cell (medians), 10 s warm-up; every migration ${allVerified ? 'verified (Merkle roots agree)' : '**did NOT all verify**'}. Simulated in ${setup.wall_s} s.`, '');
  md.push('Guest I/O slowdown = mean response time of VM requests arriving during the migration / during the warm-up before it.', '');
  md.push('Every cell is a simulated migration: the real engines, filters, channel and policies on a virtual clock with a modelled link and disk (`flimcd simulate`; validated against real agents through the WAN emulator by test/sim/validation.test.ts).', '');
  for (const [n, , title] of charts) md.push(`### ${title}`, '', `![${title}](${n}.png)`, '', `SVG: [${n}.svg](${n}.svg)`, '');
  for (const l of linkNames) {
    md.push(`## ${l}`, '', '| workload | algorithm | time s | pre-copy s | post-copy s | downtime ms | wire | miss rate | slowdown |', '|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of cells.filter((x) => x.link === l)) {
      if (c.error) md.push(`| ${c.workload} | ${c.algorithm} | error: ${c.error} | | | | | | |`);
      else md.push(`| ${c.workload} | ${c.algorithm} | ${c.time_total_s.toFixed(1)} | ${c.time_precopy_s.toFixed(1)} | ${c.time_postcopy_s.toFixed(1)} | ${c.downtime_ms.toFixed(0)} | ${formatBytes(c.wire_bytes)} | ${c.block_miss_rate.toFixed(4)} | ${c.guest_slowdown?.toFixed(2) ?? '-'} |`);
    }
    md.push('');
  }
  writeFileSync(join(out, 'report.md'), md.join('\n'));

  if (v.json) process.stdout.write(JSON.stringify({ headline, setup, cells }) + '\n');
  else {
    process.stdout.write(`headline: time flimcd/precopy (moderate) ${headline.time_flimcd_over_precopy_moderate} (paper ${PAPER.time}, goal ≤ ${GOAL.time}); miss flimcd/postcopy ${headline.miss_flimcd_over_postcopy} (paper ≤ ${PAPER.miss}, goal ≤ ${GOAL.miss})\n\n`);
    const w = [10, 20, 16, 9, 9, 10, 10, 9];
    const row = (xs: string[]) => xs.map((x, i) => (i < 3 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
    process.stdout.write(row(['workload', 'algorithm', 'link', 'time s', 'down ms', 'wire', 'miss', 'slowdn']) + '\n');
    for (const c of cells) {
      process.stdout.write(row([c.workload, c.algorithm, c.link, c.error ? 'error' : c.time_total_s.toFixed(1), c.downtime_ms.toFixed(0), formatBytes(c.wire_bytes), c.block_miss_rate.toFixed(4), c.guest_slowdown?.toFixed(2) ?? '-']) + '\n');
    }
    process.stdout.write(`\nreport: ${join(out, 'report.md')} (charts beside it)\n`);
  }
  if (!allVerified) process.exitCode = 1;
}

await main();
