/**
 * The FlimCD paper's comparison, on the simulator (issue 6).
 *
 *   npm run -s bench:paper [-- --json] [--quick] [--image-size 2GiB] [--runs N] [--base-share 0.5] [--out reports/paper]
 *
 * Method
 * - Every cell is a simulated migration (src/sim/simulate.ts): the real
 *   engines and policies on a virtual clock, a modelled link (bandwidth,
 *   delay) and a modelled disk (src/sim/sim-disk.ts). The simulator is
 *   validated against real agents by test/sim/validation.test.ts.
 * - Algorithms: precopy, postcopy, hybrid, flimcd, and flimcd with each
 *   optimization off in turn (dedup, zstd, hot-order, prefetch).
 * - Workloads: the light, moderate, heavy and mail profiles, each resolved
 *   against the cell's link as docs/design.md pins them (dirtying 5 / 20 / 60 / 20 %
 *   of the link), with a 10 s warm-up before the migration starts.
 * - Links: {100 Mbit/s, 1 Gbit/s} × {10, 50, 150 ms RTT}.
 * - Image: synthetic, image-gen's mix (30 % holes, 10 % repeated blocks, 40 %
 *   text, 20 % random), default 1 GiB (the paper's 20 GiB: --image-size).
 *   240 cells take ~2-3 min on a 2-core machine.
 * - What the destination holds (docs/design.md: "datacenter B usually already
 *   holds much of the content"), two scenarios:
 *   - base: the VM was cloned from an OS template that the target holds in
 *     its replica index; BASE_SHARE (50 %) of the non-zero blocks are still
 *     the template's (src/sim/base-image.ts has the rationale). Every cell.
 *   - empty: the target holds nothing. Moderate only (every link and
 *     algorithm), to show what no prior content costs and its floor.
 *   Only dedup can use what the target holds: precopy, postcopy and hybrid
 *   (and flimcd-no-dedup) send the same bytes in both.
 * - Runs: --runs seeds per cell (default 3: seed k is the k-th synthetic
 *   image, its base and the workload's seed); a cell's numbers are the median
 *   over seeds, and the spread (min-max over seeds) of each headline is
 *   reported beside it (`spread` in results.json).
 * - Guest I/O slowdown: mean response time of the VM's requests arriving
 *   during the migration over that of the same requests in a paired control
 *   run without migration (src/sim/control-run.ts).
 * - Headline (base scenario): time_flimcd_over_precopy_moderate = median over
 *   the six links of time(flimcd)/time(precopy) on moderate (paper 0.357,
 *   goal ≤ 0.30); miss_flimcd_over_postcopy = pooled over every workload ×
 *   link cell and seed: all of flimcd's post-copy misses over all its
 *   post-copy reads, over the same for postcopy (paper ≤ 0.51, goal ≤ 0.40;
 *   flimcd reads few blocks in its short post-copy, so one cell's rate is
 *   coarse and a median of per-cell ratios rests on small samples: it stays
 *   beside as miss_flimcd_over_postcopy_median_of_cells).
 *   miss_flimcd_over_hybrid (pooled the same way) and
 *   time_flimcd_over_hybrid_moderate isolate the optimizations: hybrid is
 *   flimcd's pre-copy/post-copy schedule with none of them.
 *   Beside them: time_flimcd_over_precopy_moderate_empty_target (the same
 *   ratio, empty target) and its floor, floor_empty_target: the time the
 *   distinct non-zero content takes at its modelled zstd size over the link
 *   (what perfect dedup and compression must still send), over precopy's time.
 * - Output: --out folder (default reports/paper): report.md (headline, then
 *   the table), results.json, and SVG + PNG charts of migration time, wire
 *   bytes, downtime, post-copy miss rate and guest I/O slowdown.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './stats.ts';
import { medianOfRatios, pool, pooledRatio, type Pool } from './headline.ts';
import { renderChart } from './charts.ts';
import { syntheticImage } from '../src/sim/image-model.ts';
import { BASE_SHARE, baseOf } from '../src/sim/base-image.ts';
import type { SimDisk } from '../src/sim/sim-disk.ts';
import { paperVariants, parseWorkload, runScenario, summarize, type SummaryRow } from '../src/sim/scenario.ts';
import { formatBitRate, formatBytes, parseSize } from '../src/util/units.ts';

const WORKLOADS = ['light', 'moderate', 'heavy', 'mail'] as const;
const BANDWIDTHS = [100e6, 1e9];
const RTTS = [10, 50, 150];
const PAPER = { time: 0.357, miss: 0.51 };
const GOAL = { time: 0.3, miss: 0.4 };

type TargetHolds = 'base' | 'empty';

interface Cell {
  target_holds: TargetHolds;
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
  /** Blocks the VM read during post-copy, and how many of them missed (medians over runs). */
  blocks_read_postcopy: number;
  misses: number;
  guest_slowdown: number | null;
  /** Each seed's numbers, for pooling and the spread. */
  per_seed: Array<{ seed: number; time_total_s: number; misses: number; blocks_read_postcopy: number }>;
  error?: string;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench/paper: ${msg}\n`);
  process.stderr.write(`usage: tsx bench/paper.ts [--json] [--quick] [--image-size SIZE] [--runs N] [--out DIR]
  --quick        512 MiB image, links 100Mbit/50ms and 1Gbit/10ms only (smoke run)
  --image-size   synthetic image size (default 1GiB)
  --runs N       seeds per cell; medians reported, pooled misses, spread over seeds (default 3, quick 1)
  --base-share X share of non-zero blocks the base image still holds (default ${BASE_SHARE}; for sensitivity, not tuning)
  --out DIR      report folder (default reports/paper)
  --json         print the table as one JSON object (headline first)
`);
  process.exit(2);
}

/** Bytes of every distinct non-zero content of an image at its modelled zstd size (0 = incompressible: the whole block). */
function distinctContentBytes(img: SimDisk): number {
  const seen = new Set<number>();
  let bytes = 0;
  for (let b = 0; b < img.blocks; b++) {
    const id = img.ids[b]!;
    if (id === 0 || seen.has(id)) continue;
    seen.add(id);
    bytes += img.zsizes[b] || Math.min(img.unit, img.size - b * img.unit);
  }
  return bytes;
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
        runs: { type: 'string' }, out: { type: 'string' }, 'base-share': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    usage((e as Error).message);
  }
  if (v.help) usage();
  const size = parseSize(v['image-size'] ?? (v.quick ? '512MiB' : '1GiB'), '--image-size');
  const runs = Number(v.runs ?? (v.quick ? 1 : 3));
  const share = Number(v['base-share'] ?? BASE_SHARE);
  if (!(share >= 0 && share <= 1)) usage('--base-share must be a fraction from 0 to 1');
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) usage('--runs must be an integer from 1 to 20');
  const out = v.out ?? 'reports/paper';
  const links = v.quick ? [[100e6, 50], [1e9, 10]] : BANDWIDTHS.flatMap((bw) => RTTS.map((rtt) => [bw, rtt]));
  const variants = paperVariants();
  const bs = 65536;
  const images = Array.from({ length: runs }, (_, i) => syntheticImage(size, bs, i + 1));
  const bases = images.map((im, i) => baseOf(im, share, i + 1));
  const cells: Cell[] = [];
  const wall0 = performance.now();
  // Every cell with the base at the target; moderate also with an empty target.
  const plan: Array<{ holds: TargetHolds; bw: number; rtt: number; w: string }> = [];
  for (const [bw, rtt] of links as Array<[number, number]>) {
    for (const w of WORKLOADS) plan.push({ holds: 'base', bw, rtt, w });
    plan.push({ holds: 'empty', bw, rtt, w: 'moderate' });
  }
  const total = plan.length * variants.length;
  for (const { holds, bw, rtt, w } of plan) {
    for (const variant of variants) {
      const samples: SummaryRow[] = [];
      let error: string | undefined;
      for (let run = 0; run < runs; run++) {
        try {
          const workload = parseWorkload({ spec: w, imageBytes: size, bandwidthBps: bw, blockSize: bs, seed: run + 1 });
          const baseImage = holds === 'base' ? bases[run] : undefined;
          samples.push(summarize(variant.name, await runScenario({ image: images[run]!, baseImage, workload, variant, bandwidthBps: bw, rttMs: rtt, warmupMs: 10_000 })));
        } catch (e) {
          error = (e as Error).message;
          break;
        }
      }
      const m = (k: keyof SummaryRow) => (samples.length ? median(samples.map((s) => Number(s[k] ?? NaN))) : NaN);
      const slow = samples.map((s) => s.guest_slowdown).filter((x): x is number => x !== null);
      cells.push({
        target_holds: holds, workload: w, link: linkName(bw, rtt), bandwidth_bps: bw, rtt_ms: rtt, algorithm: variant.name, runs: samples.length,
        verified: samples.length === runs && samples.every((s) => s.verified),
        time_total_s: m('time_total_s'), time_precopy_s: m('time_precopy_s'), time_postcopy_s: m('time_postcopy_s'), downtime_ms: m('downtime_ms'),
        wire_bytes: m('wire_bytes'), block_miss_rate: m('block_miss_rate'), blocks_read_postcopy: m('blocks_read_postcopy'),
        misses: samples.length ? median(samples.map((s) => Math.round(s.block_miss_rate * s.blocks_read_postcopy))) : NaN, guest_slowdown: slow.length ? median(slow) : null,
        per_seed: samples.map((s, i) => ({ seed: i + 1, time_total_s: s.time_total_s, misses: Math.round(s.block_miss_rate * s.blocks_read_postcopy), blocks_read_postcopy: s.blocks_read_postcopy })),
        ...(error ? { error } : {}),
      });
      if (!v.json) process.stderr.write(`\r  ${cells.length}/${total} cells, ${((performance.now() - wall0) / 1000).toFixed(0)} s   `);
    }
  }
  if (!v.json) process.stderr.write('\n');

  const r3 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
  const cell = (w: string, link: string, a: string, holds: TargetHolds = 'base') => cells.find((c) => c.target_holds === holds && c.workload === w && c.link === link && c.algorithm === a);
  const linkNames = [...new Set(cells.map((c) => c.link))];
  const ratiosByLink = (holds: TargetHolds) =>
    Object.fromEntries(linkNames.map((l) => [l, (cell('moderate', l, 'flimcd', holds)?.time_total_s ?? NaN) / (cell('moderate', l, 'precopy', holds)?.time_total_s ?? NaN)]));
  const timeRatio = (holds: TargetHolds) =>
    medianOfRatios(linkNames.map((l) => ({ num: cell('moderate', l, 'flimcd', holds)?.time_total_s, den: cell('moderate', l, 'precopy', holds)?.time_total_s })));
  const pairs = WORKLOADS.flatMap((w) => linkNames.map((l) => ({ flimcd: cell(w, l, 'flimcd'), postcopy: cell(w, l, 'postcopy'), hybrid: cell(w, l, 'hybrid') })));
  const missRatioMedian = medianOfRatios(pairs.map((c) => ({ num: c.flimcd?.block_miss_rate, den: c.postcopy?.block_miss_rate })));
  // Pooled: all cells' misses over all their post-copy reads, per algorithm (every seed's). flimcd's post-copy
  // lasts a fraction of a second and reads few blocks per cell, so a cell's rate is coarse; the pooled ratio
  // weighs every read once. `seed` picks one seed's runs (for the spread).
  const poolOf = (k: 'flimcd' | 'postcopy' | 'hybrid', seed?: number): Pool =>
    pool(pairs.flatMap((c) => (c[k]?.per_seed ?? []).filter((x) => seed === undefined || x.seed === seed).map((x) => ({ events: x.misses, trials: x.blocks_read_postcopy }))));
  const pools = { flimcd: poolOf('flimcd'), postcopy: poolOf('postcopy'), hybrid: poolOf('hybrid') };
  const timeRatioOver = (base: string, seed?: number) =>
    medianOfRatios(linkNames.map((l) => {
      const at = (a: string) => cell('moderate', l, a)?.per_seed.find((x) => seed === undefined || x.seed === seed)?.time_total_s;
      return seed === undefined ? { num: cell('moderate', l, 'flimcd')?.time_total_s, den: cell('moderate', l, base)?.time_total_s } : { num: at('flimcd'), den: at(base) };
    }));
  const seedList = Array.from({ length: runs }, (_, i) => i + 1);
  const spreadOf = (f: (seed: number) => number): [number | null, number | null] => {
    const xs = seedList.map(f).filter(Number.isFinite);
    return xs.length ? [r3(Math.min(...xs)), r3(Math.max(...xs))] : [null, null];
  };
  // The empty target's floor: every distinct non-zero content once, at its modelled zstd size, over the link, against precopy's time.
  const floorBytes = distinctContentBytes(images[0]!);
  const floorRatios = linkNames
    .map((l) => {
      const c = cell('moderate', l, 'precopy', 'empty');
      return c ? (floorBytes * 8) / c.bandwidth_bps / c.time_total_s : NaN;
    })
    .filter(Number.isFinite);
  const headline = {
    time_flimcd_over_precopy_moderate: r3(timeRatio('base')),
    miss_flimcd_over_postcopy: r3(pooledRatio(pools.flimcd, pools.postcopy)),
    miss_flimcd_over_hybrid: r3(pooledRatio(pools.flimcd, pools.hybrid)),
    time_flimcd_over_hybrid_moderate: r3(timeRatioOver('hybrid')),
    miss_flimcd_over_postcopy_median_of_cells: r3(missRatioMedian),
    time_flimcd_over_precopy_moderate_empty_target: r3(timeRatio('empty')),
    floor_empty_target: floorRatios.length ? r3(median(floorRatios)) : null,
    scenario: `target holds the base image the VM was cloned from (${share * 100} % of non-zero blocks shared, in its replica index)`,
    paper: { time_flimcd_over_precopy_moderate: PAPER.time, miss_flimcd_over_postcopy: PAPER.miss },
    goal: { time_flimcd_over_precopy_moderate: GOAL.time, miss_flimcd_over_postcopy: GOAL.miss },
    spread: {
      seeds: runs,
      time_flimcd_over_precopy_moderate: spreadOf((seed) => timeRatioOver('precopy', seed)),
      miss_flimcd_over_postcopy: spreadOf((seed) => pooledRatio(poolOf('flimcd', seed), poolOf('postcopy', seed))),
      miss_flimcd_over_hybrid: spreadOf((seed) => pooledRatio(poolOf('flimcd', seed), poolOf('hybrid', seed))),
      time_flimcd_over_hybrid_moderate: spreadOf((seed) => timeRatioOver('hybrid', seed)),
    },
  };
  const byLink = (holds: TargetHolds) => Object.fromEntries(Object.entries(ratiosByLink(holds)).map(([l, x]) => [l, r3(x)]));
  const perLink = { base: byLink('base'), empty: byLink('empty') };
  const setup = { time_flimcd_over_precopy_moderate_by_link: perLink, image_bytes: size, block_size: bs, base_share: share, floor_bytes_empty_target: floorBytes, runs, warmup_s: 10, links: linkNames, workloads: [...WORKLOADS], algorithms: variants.map((x) => x.name), wall_s: Math.round((performance.now() - wall0) / 1000) };
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
    const rows = cells.filter((c) => c.target_holds === 'base' && c[field] !== null && Number.isFinite(c[field] as number)).map((c) => ({ ...c }));
    const { svg, png } = await renderChart({ title: `${yTitle} — ${formatBytes(size)} image, target holds the base`, field, yTitle, rows, x: 'workload', bar: 'algorithm', column: 'link', barOrder: variants.map((x) => x.name), xOrder: [...WORKLOADS], columnOrder: linkNames, logScale: log });
    writeFileSync(join(out, `${name}.svg`), svg);
    writeFileSync(join(out, `${name}.png`), png);
  }
  const md: string[] = [];
  md.push('# FlimCD paper comparison (simulated)', '');
  md.push('## Headline', '');
  md.push(`Scenario of the headline: the destination holds the base image (OS template) the VM was cloned from, registered in its replica index; ${share * 100} % of the image's non-zero blocks are still the template's (src/sim/base-image.ts gives the rationale for the default, ${BASE_SHARE * 100} %). The baselines cannot use it and send the same bytes as with an empty target.`, '');
  md.push('| ratio | measured | paper | goal |', '|---|---|---|---|');
  const sp = (k: keyof typeof headline.spread) => {
    const x = headline.spread[k];
    return Array.isArray(x) && runs > 1 ? ` (${x[0] ?? 'n/a'}–${x[1] ?? 'n/a'} over ${runs} seeds)` : '';
  };
  md.push(`| time flimcd / precopy, moderate (median over links), target holds the base | ${headline.time_flimcd_over_precopy_moderate ?? 'n/a'}${sp('time_flimcd_over_precopy_moderate')} | ${PAPER.time} | ≤ ${GOAL.time} |`);
  md.push(`| miss rate flimcd / postcopy, pooled: all cells' misses over all their post-copy reads (flimcd ${pools.flimcd.events}/${pools.flimcd.trials}, postcopy ${pools.postcopy.events}/${pools.postcopy.trials}), target holds the base | ${headline.miss_flimcd_over_postcopy ?? 'n/a'}${sp('miss_flimcd_over_postcopy')} | ≤ ${PAPER.miss} | ≤ ${GOAL.miss} |`);
  md.push(`| miss rate flimcd / hybrid, pooled (hybrid ${pools.hybrid.events}/${pools.hybrid.trials}): the optimizations alone | ${headline.miss_flimcd_over_hybrid ?? 'n/a'}${sp('miss_flimcd_over_hybrid')} | | |`);
  md.push(`| time flimcd / hybrid, moderate (median over links) | ${headline.time_flimcd_over_hybrid_moderate ?? 'n/a'}${sp('time_flimcd_over_hybrid_moderate')} | | |`);
  md.push(`| miss rate flimcd / postcopy, median of per-cell ratios | ${headline.miss_flimcd_over_postcopy_median_of_cells ?? 'n/a'} | | |`);
  md.push(`| time flimcd / precopy, moderate, **empty target** | ${headline.time_flimcd_over_precopy_moderate_empty_target ?? 'n/a'} | | |`);
  md.push(`| floor of that ratio with an empty target | ${headline.floor_empty_target ?? 'n/a'} | | |`);
  md.push('', `With an empty target no algorithm can beat the floor: every distinct non-zero content (${formatBytes(floorBytes)} of the ${formatBytes(size)} image, at its modelled zstd size; the 20 % random blocks do not compress) must cross the link once, which alone takes ${headline.floor_empty_target ?? 'n/a'} of precopy's time, before any re-sent dirty blocks or post-copy. The paper's and design.md's scenario is a destination that already holds much of the content.`);
  md.push('', '| link | time flimcd / precopy, moderate, base | same, empty target |', '|---|---:|---:|');
  for (const l of linkNames) md.push(`| ${l} | ${perLink.base[l] ?? 'n/a'} | ${perLink.empty[l] ?? 'n/a'} |`);
  md.push('', 'Modelled, not measured: CPU time is zero, and a block\'s zstd size is its level-3 size whatever level the sender picks. At 100 Mbit/s the sender picks level 6 (within 0.5 % of level 3 on image-gen text); at 1 Gbit/s it picks level 1 (about 6 % larger on text), and real compression at 1 Gbit/s would need more CPU than the level policy allows itself: the 1 Gbit/s cells are optimistic for the algorithms that compress.');
  md.push('', `Image ${formatBytes(size)} (synthetic, image-gen mix), block 64 KiB, ${runs} seed(s) per cell (medians), 10 s warm-up; every migration ${allVerified ? 'verified (Merkle roots agree)' : '**did NOT all verify**'}. Simulated in ${setup.wall_s} s.`, '');
  md.push('Guest I/O slowdown = mean response time of VM requests arriving during the migration / that of the same requests in a paired control run without migration.', '');
  md.push('Every cell is a simulated migration: the real engines, filters, channel and policies on a virtual clock with a modelled link and disk (`flimcd simulate`; validated against real agents through the WAN emulator by test/sim/validation.test.ts).', '');
  for (const [n, , title] of charts) md.push(`### ${title}`, '', `![${title}](${n}.png)`, '', `SVG: [${n}.svg](${n}.svg)`, '');
  for (const l of linkNames) {
    md.push(`## ${l}`, '', '| target holds | workload | algorithm | time s | pre-copy s | post-copy s | downtime ms | wire | miss rate | slowdown |', '|---|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of cells.filter((x) => x.link === l)) {
      if (c.error) md.push(`| ${c.target_holds} | ${c.workload} | ${c.algorithm} | error: ${c.error} | | | | | | |`);
      else md.push(`| ${c.target_holds} | ${c.workload} | ${c.algorithm} | ${c.time_total_s.toFixed(1)} | ${c.time_precopy_s.toFixed(1)} | ${c.time_postcopy_s.toFixed(1)} | ${c.downtime_ms.toFixed(0)} | ${formatBytes(c.wire_bytes)} | ${c.block_miss_rate.toFixed(4)} | ${c.guest_slowdown?.toFixed(2) ?? '-'} |`);
    }
    md.push('');
  }
  writeFileSync(join(out, 'report.md'), md.join('\n'));

  if (v.json) process.stdout.write(JSON.stringify({ headline, setup, cells }) + '\n');
  else {
    process.stdout.write(`headline (target holds the base image): time flimcd/precopy (moderate) ${headline.time_flimcd_over_precopy_moderate}${sp('time_flimcd_over_precopy_moderate')} (paper ${PAPER.time}, goal ≤ ${GOAL.time}); miss flimcd/postcopy, pooled ${headline.miss_flimcd_over_postcopy}${sp('miss_flimcd_over_postcopy')} (paper ≤ ${PAPER.miss}, goal ≤ ${GOAL.miss})\n`);
    process.stdout.write(`flimcd vs hybrid (the optimizations alone): miss, pooled ${headline.miss_flimcd_over_hybrid}${sp('miss_flimcd_over_hybrid')}; time (moderate) ${headline.time_flimcd_over_hybrid_moderate}${sp('time_flimcd_over_hybrid_moderate')}\n`);
    process.stdout.write(`empty target: time flimcd/precopy (moderate) ${headline.time_flimcd_over_precopy_moderate_empty_target}; floor ${headline.floor_empty_target} (distinct content at its zstd size over the link / precopy time)\n\n`);
    const w = [6, 10, 20, 16, 9, 9, 10, 10, 9];
    const row = (xs: string[]) => xs.map((x, i) => (i < 4 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
    process.stdout.write(row(['holds', 'workload', 'algorithm', 'link', 'time s', 'down ms', 'wire', 'miss', 'slowdn']) + '\n');
    for (const c of cells) {
      process.stdout.write(row([c.target_holds, c.workload, c.algorithm, c.link, c.error ? 'error' : c.time_total_s.toFixed(1), c.downtime_ms.toFixed(0), formatBytes(c.wire_bytes), c.block_miss_rate.toFixed(4), c.guest_slowdown?.toFixed(2) ?? '-']) + '\n');
    }
    process.stdout.write(`\nreport: ${join(out, 'report.md')} (charts beside it)\n`);
  }
  if (!allVerified) process.exitCode = 1;
}

await main();
