import { realRuntime } from '../../runtime.ts';
import type { Command } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLocalMigration } from '../../demo/local-migration.ts';
import { parseBitRate, parseBlockSize, parseDuration, parseSize, formatBytes, formatBitRate, formatDuration } from '../../util/units.ts';
import { parseAlgorithm } from '../../policy/algorithm.ts';
import { PROFILE_NAMES } from '../../workload/profiles.ts';
import { log } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { formatReport } from '../report-format.ts';
import { addLogOptions, type LogFlags } from '../log-options.ts';

interface DemoOptions extends LogFlags {
  size: string;
  bandwidth: string;
  rtt: string;
  workload: string;
  algorithm: string;
  blockSize: string;
  seed: string;
  json?: boolean;
  keep?: boolean;
  dedup: boolean;
  compress: boolean;
  insecure?: boolean;
}

export function registerDemo(program: Command): void {
  addLogOptions(program
    .command('demo'))
    .description('A live migration on this machine: a generated disk image moves from a source agent to a target agent through an emulated WAN while a workload writes to it, ending in a verified report.')
    .option('--size <size>', 'image size', '1GiB')
    .option('--bandwidth <rate>', 'emulated link bandwidth', '100Mbit')
    .option('--rtt <duration>', 'emulated round-trip time', '40ms')
    .option('--workload <profile>', `workload during the migration (${PROFILE_NAMES.join(', ')})`, 'moderate')
    .option('--algorithm <name>', 'precopy, postcopy, hybrid or flimcd', 'flimcd')
    .option('--block-size <size>', 'migration block size', '64KiB')
    .option('--seed <n>', 'seed for image content and workload', '1')
    .option('--json', 'print the final report as one JSON object')
    .option('--keep', 'keep the work directory (images) afterwards')
    .option('--no-dedup', 'flimcd: no content-id dedup (ablation)')
    .option('--no-compress', 'flimcd: no zstd on data frames (ablation)')
    .option('--insecure', 'plaintext link between the agents (default: TLS 1.3 with a fresh pre-shared key)')
    .addHelpText('after', '\n--quiet prints only the report (and warnings); --verbose also shows the agents\' info and debug logs.\n\nExamples:\n  flimcd demo\n  flimcd demo --quiet\n  flimcd demo --size 256MiB --bandwidth 20Mbit --rtt 20ms --algorithm precopy --json')
    .action(async (o: DemoOptions) => {
      const size = parseSize(o.size, '--size');
      if (size < 16 * 1024 * 1024) throw new UsageError('--size must be at least 16MiB');
      const bandwidthBps = parseBitRate(o.bandwidth, '--bandwidth');
      const rttMs = parseDuration(o.rtt, '--rtt');
      const algorithm = parseAlgorithm(o.algorithm);
      const blockSize = parseBlockSize(o.blockSize);
      if (!(PROFILE_NAMES as readonly string[]).includes(o.workload)) throw new UsageError(`--workload: "${o.workload}" is not one of ${PROFILE_NAMES.join(', ')}`);
      const seed = Number(o.seed);
      if (!Number.isInteger(seed)) throw new UsageError(`--seed: "${o.seed}" is not an integer`);
      const say = (s: string) => { if (!o.json) process.stdout.write(s); };
      // The running commentary (header, phases, the status line); --quiet keeps only the report.
      const chatter = (s: string) => { if (!o.quiet) say(s); };
      const dir = mkdtempSync(join(tmpdir(), 'flimcd-demo-'));
      const started = performance.now();
      chatter(`flimcd demo: ${formatBytes(size)} image, ${o.workload} workload, ${algorithm}, link ${formatBitRate(bandwidthBps)} / ${formatDuration(rttMs)} RTT\n`);
      const quiet = log.child({ demo: true });
      // The agents' info logs would drown the commentary: warnings only, unless --verbose or FLIMCD_LOG_LEVEL asks.
      if (!process.env.FLIMCD_LOG_LEVEL && !o.verbose) quiet.level = 'warn';
      // Both agents share one pool of worker threads for ids and zstd (both cores, as agents in two processes would use).
      const runtime = realRuntime({ workers: 0 });
      try {
        const r = await runLocalMigration({
          dir, size, bandwidthBps, security: o.insecure ? { mode: 'insecure' } : undefined, rttMs, workload: o.workload as (typeof PROFILE_NAMES)[number], algorithm, blockSize, seed, log: quiet,
          features: { dedup: o.dedup === false ? false : undefined, compress: o.compress === false ? false : undefined }, runtime,
          onPhase: (p) => chatter(`  [${formatDuration(performance.now() - started).padStart(7)}] ${p}\n`),
          onStatus: process.stdout.isTTY && !o.json && !o.quiet ? (s) => {
            const rem = Number(s.remainingBlocks ?? 0) * blockSize;
            process.stdout.write(`\r    ${String(s.phase)} round ${Number(s.round ?? 0)}: ${formatBytes(rem)} to go, ${formatBytes(Number(s.wireBytes ?? 0))} on the wire   `);
          } : undefined,
        });
        const wl = r.workload;
        const extra: Array<[string, string]> = [
          ['workload', `${wl.ops} ops (${wl.reads} reads, ${wl.writes} writes), ${wl.iops.toFixed(0)} IOPS, read p50/p99 ${wl.latency.read.p50Ms.toFixed(1)}/${wl.latency.read.p99Ms.toFixed(1)} ms`],
          ['VM moved', wl.switchOver ? `at ${formatDuration(wl.switchOver.atMs)}, I/O stall ${formatDuration(wl.switchOver.stallMs)}` : 'no'],
          ['workload check', `${r.finalVerify.pagesChecked} pages re-read at the target (${r.finalVerify.scope}), ${r.finalVerify.mismatches + (wl.verify.mismatches ?? 0)} mismatches`],
        ];
        const ok = r.report.verified && r.workloadVerified;
        if (o.json) process.stdout.write(JSON.stringify({ ...r.report, workload: { ops: wl.ops, iops: wl.iops, latency: wl.latency, switch_over: wl.switchOver, mismatches: r.finalVerify.mismatches + wl.verify.mismatches, verified: r.workloadVerified }, image_content: r.image, wall_s: (performance.now() - started) / 1000 }) + '\n');
        else say((o.quiet ? '' : '\n') + formatReport(r.report, extra));
        if (!ok) process.exitCode = ExitCode.VERIFY_FAILED;
      } finally {
        await runtime.work.close();
        if (o.keep) say(`work directory kept: ${dir}\n`);
        else rmSync(dir, { recursive: true, force: true });
      }
    });
}
