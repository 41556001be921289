import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { formatBitRate, formatBytes, parseBitRate, parseBlockSize, parseDuration, parseSize } from '../../util/units.ts';
import { scanImage, syntheticImage } from '../../sim/image-model.ts';
import { BASE_SHARE, baseOf } from '../../sim/base-image.ts';
import { applySwitches, parseVariants, parseWorkload, runScenario, summarize, type SummaryRow } from '../../sim/scenario.ts';
import { ExitCode } from '../exit-codes.ts';
import { checkImageSpecArg } from '../image-arg.ts';
import { parseImageFormat } from '../../image/image-spec.ts';

interface SimulateOptions {
  workload: string;
  imageSize?: string;
  image?: string;
  format?: string;
  bandwidth: string;
  rtt: string;
  loss: string;
  algorithm: string;
  blockSize: string;
  seed: string;
  warmup: string;
  timeScale: string;
  targetHolds: string;
  baseShare: string;
  /** --[no-]X: undefined when neither is given (the algorithm's default). */
  hotOrder?: boolean;
  prefetch?: boolean;
  dedup?: boolean;
  compress?: boolean;
  json?: boolean;
}

/** A fixed-width table: one row per algorithm. */
export function formatRows(rows: SummaryRow[]): string {
  const head = ['algorithm', 'time', 'pre-copy', 'post-copy', 'downtime', 'wire', 'miss rate', 'demand rate', 'slowdown', 'verified'];
  const body = rows.map((r) => [
    r.algorithm, `${r.time_total_s.toFixed(1)} s`, `${r.time_precopy_s.toFixed(1)} s`, `${r.time_postcopy_s.toFixed(1)} s`, `${r.downtime_ms.toFixed(0)} ms`,
    formatBytes(r.wire_bytes), r.block_miss_rate.toFixed(3), r.demand_fetch_rate.toFixed(3), r.guest_slowdown === null ? '-' : `${r.guest_slowdown.toFixed(2)}x`, r.verified ? 'yes' : 'NO',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('Simulate a migration: the real source and target engines and policies on a virtual clock, with a modelled link and disk (a 20 GiB migration in seconds).')
    .requiredOption('--workload <spec>', 'profile (idle, light, moderate, heavy, mail, files) or trace:FILE (FIU IODedup format, .zst/.gz too)')
    .option('--image-size <size>', 'size of a synthetic image (image-gen mix: 30 % holes, 10 % repeated, 40 % text, 20 % random)', '20GiB')
    .option('--image <image>', 'model this image instead of a synthetic one (scanned: zero blocks, content ids, zstd sizes): a raw file, a block device, a qcow2 file (--format qcow2) or an NBD URI')
    .option('--format <fmt>', 'format of --image: raw or qcow2 (never probed)', 'raw')
    .option('--bandwidth <rate>', 'link bandwidth', '100Mbit')
    .option('--rtt <duration>', 'link round-trip time', '50ms')
    .option('--loss <percent>', 'packet loss, e.g. 0.1% (modelled as the rate it leaves TCP)', '0%')
    .option('--algorithm <list>', 'all, ablation, or comma-separated: precopy, postcopy, hybrid, flimcd, flimcd-no-dedup, flimcd-no-zstd, flimcd-no-hot-order, flimcd-no-prefetch', 'all')
    .option('--block-size <size>', 'migration block size', '64KiB')
    .option('--seed <n>', 'workload seed', '1')
    .option('--warmup <duration>', 'simulated time the workload runs before the migration starts', '10s')
    .option('--time-scale <x>', 'trace workloads: replay this many times faster than recorded', '1')
    .option('--target-holds <what>', 'what the target holds before the migration: none (an empty destination), or base (the OS template the VM was cloned from, registered in its replica index)', 'none')
    .option('--base-share <percent>', `with --target-holds base: share of the image's non-zero blocks still equal to the base (default ${BASE_SHARE * 100}%)`, `${BASE_SHARE * 100}%`)
    .option('--hot-order', 'ablation: hot order on, for every algorithm (postcopy included)')
    .option('--no-hot-order', 'ablation: hot order off, for every algorithm')
    .option('--prefetch', 'ablation: prefetch around post-copy misses on, for every algorithm')
    .option('--no-prefetch', 'ablation: prefetch off, for every algorithm')
    .option('--dedup', 'ablation: dedup (content ids instead of data) on, for every algorithm')
    .option('--no-dedup', 'ablation: dedup off, for every algorithm')
    .option('--compress', 'ablation: zstd on data frames on, for every algorithm')
    .option('--no-compress', 'ablation: zstd off, for every algorithm')
    .option('--json', 'print one JSON object')
    .addHelpText('after', '\nExamples:\n  flimcd simulate --workload moderate --image-size 20GiB --bandwidth 100Mbit --rtt 50ms --algorithm all\n  flimcd simulate --workload files --image-size 4GiB --algorithm postcopy --hot-order --prefetch\n  flimcd simulate --workload trace:homes.fiu --time-scale 10 --algorithm flimcd,precopy --json\n  flimcd simulate --workload moderate --image-size 1GiB --target-holds base --base-share 50% --algorithm flimcd,precopy\n\nDestination: --target-holds none models an empty target; base models a VM cloned from an OS template the\ntarget holds (src/sim/base-image.ts: --base-share of the non-zero blocks unchanged since the clone, across all\ncontent kinds). Only flimcd (dedup) can use what the target holds; precopy, postcopy and hybrid send raw blocks.\n\nModelled: the link (bandwidth, delay; loss as the rate TCP keeps), the disk (content identity per block, no bytes), CPU time (zero).\nReal: the engines, filters, channel, message encoders and policies.')
    .action(async (opts: SimulateOptions) => {
      const bandwidthBps = parseBitRate(opts.bandwidth, '--bandwidth');
      const rttMs = parseDuration(opts.rtt, '--rtt');
      if (!(rttMs >= 0) || rttMs > 10_000) throw new UsageError('--rtt must be from 0 to 10s');
      const lossM = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(opts.loss);
      const lossRate = lossM ? Number(lossM[1]) / 100 : NaN;
      if (!(lossRate >= 0 && lossRate < 1)) throw new UsageError(`--loss: "${opts.loss}" must be a percentage from 0% to below 100%`);
      const blockSize = parseBlockSize(opts.blockSize);
      if (!/^\d+$/.test(opts.seed) || Number(opts.seed) > 0xffffffff) throw new UsageError(`--seed: "${opts.seed}" is not an integer from 0 to 4294967295`);
      const warmupMs = parseDuration(opts.warmup, '--warmup');
      const timeScale = Number(opts.timeScale);
      if (!(timeScale > 0)) throw new UsageError(`--time-scale: "${opts.timeScale}" must be a positive number`);
      const variants = applySwitches(parseVariants(opts.algorithm), { hotOrder: opts.hotOrder, prefetch: opts.prefetch, dedup: opts.dedup, compress: opts.compress });
      if (opts.image) checkImageSpecArg(opts.image, opts.format);
      const image = opts.image ? await scanImage(opts.image, blockSize, undefined, parseImageFormat(opts.format)) : syntheticImage(parseSize(opts.imageSize ?? '20GiB', '--image-size'), blockSize, Number(opts.seed));
      if (image.size < blockSize) throw new UsageError(`the image (${image.size} bytes) is smaller than one block`);
      if (opts.targetHolds !== 'none' && opts.targetHolds !== 'base') throw new UsageError(`--target-holds: "${opts.targetHolds}" must be none or base`);
      const shareM = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(opts.baseShare);
      const baseShare = shareM ? Number(shareM[1]) / 100 : NaN;
      if (!(baseShare >= 0 && baseShare <= 1)) throw new UsageError(`--base-share: "${opts.baseShare}" must be a percentage from 0% to 100%`);
      const baseImage = opts.targetHolds === 'base' ? baseOf(image, baseShare, Number(opts.seed)) : undefined;
      const workload = parseWorkload({ spec: opts.workload, imageBytes: image.size, bandwidthBps, blockSize, seed: Number(opts.seed), timeScale });
      const rows: SummaryRow[] = [];
      for (const variant of variants) {
        const res = await runScenario({ image, baseImage, workload, variant, bandwidthBps, rttMs, lossRate, warmupMs });
        rows.push(summarize(variant.name, res));
        if (!opts.json) process.stderr.write(`  ${variant.name}: done in ${res.wall_s.toFixed(1)} s\n`);
      }
      const setup = { workload: workload.name, image_bytes: image.size, block_size: blockSize, bandwidth_bps: bandwidthBps, rtt_ms: rttMs, loss_rate: lossRate, warmup_ms: warmupMs, seed: Number(opts.seed), target_holds: opts.targetHolds, ...(baseImage ? { base_share: baseShare } : {}) };
      if (opts.json) process.stdout.write(JSON.stringify({ ...setup, results: rows }, null, 2) + '\n');
      else {
        process.stdout.write(`Simulated ${workload.name} on ${formatBytes(image.size)} over ${formatBitRate(bandwidthBps)}, ${rttMs} ms RTT, target holds ${baseImage ? `the base image (${(baseShare * 100).toFixed(0)} % shared)` : 'nothing'}\n\n${formatRows(rows)}\n`);
      }
      if (rows.some((r) => !r.verified)) process.exitCode = ExitCode.VERIFY_FAILED;
    });
}
