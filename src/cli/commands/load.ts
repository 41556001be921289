import type { Command } from 'commander';
import type { Disk } from '../../block/disk.ts';
import { NbdClient } from '../../nbd/client.ts';
import { ErrorCode, FlimcdError, UsageError } from '../../errors.ts';
import { formatAddress, nbdUri, parseAddress, type Address } from '../../util/address.ts';
import { formatBitRate, formatBytes, formatDuration, parseBitRate, parseBlockSize, parseDuration } from '../../util/units.ts';
import { ExpectedDisk, finalVerify, type FinalVerifyResult, type Mismatch } from '../../workload/expected.ts';
import { WorkloadExecutor, type ExecutorResult, type SecondStats } from '../../workload/executor.ts';
import { RequestGenerator } from '../../workload/generator.ts';
import type { LatencySummary } from '../../workload/latency.ts';
import { PROFILE_NAMES, PROFILES, resolveProfile, type ResolvedProfile } from '../../workload/profiles.ts';
import { ExitCode } from '../exit-codes.ts';
import { onShutdownSignal } from '../signals.ts';
import { addLogOptions } from '../log-options.ts';

interface LoadOptions {
  nbd: string;
  export: string;
  then?: string;
  thenExport?: string;
  profile: string;
  duration: string;
  seed: string;
  bandwidth: string;
  blockSize: string;
  queueDepth: string;
  verifyBase?: string;
  finalVerify?: boolean;
  json?: boolean;
}

interface Parsed {
  nbd: Address;
  exportName: string;
  then: Address | undefined;
  thenExport: string;
  profile: string;
  durationMs: number;
  seed: number;
  bandwidth: number;
  blockSize: number;
  queueDepth: number;
}

function parseOptions(o: LoadOptions): Parsed {
  const nbd = parseAddress(o.nbd, '--nbd');
  const then = o.then !== undefined ? parseAddress(o.then, '--then') : undefined;
  if (o.thenExport !== undefined && then === undefined) throw new UsageError('--then-export needs --then');
  if (!(PROFILE_NAMES as readonly string[]).includes(o.profile)) {
    throw new UsageError(`--profile: unknown profile "${o.profile}" (choose one of: ${PROFILE_NAMES.join(', ')})`);
  }
  const durationMs = parseDuration(o.duration, '--duration');
  if (!(durationMs > 0)) throw new UsageError('--duration must be longer than 0');
  if (!/^\d+$/.test(o.seed) || Number(o.seed) > 0xffffffff) throw new UsageError(`--seed: "${o.seed}" is not an integer from 0 to 4294967295`);
  // parseBitRate only takes lower-case prefixes ("100mbit"); accept the "100Mbit" everyone writes.
  const bandwidth = parseBitRate(o.bandwidth.replace(/^(\s*[\d.]+\s*)([KMGT])/, (_, n: string, p: string) => n + p.toLowerCase()), '--bandwidth');
  const blockSize = parseBlockSize(o.blockSize);
  if (!/^\d+$/.test(o.queueDepth) || Number(o.queueDepth) < 1 || Number(o.queueDepth) > 1024) {
    throw new UsageError(`--queue-depth: "${o.queueDepth}" must be an integer from 1 to 1024`);
  }
  return {
    nbd, exportName: o.export, then, thenExport: o.thenExport ?? o.export, profile: o.profile, durationMs,
    seed: Number(o.seed), bandwidth, blockSize, queueDepth: Number(o.queueDepth),
  };
}

const ms = (v: number) => Math.round(v * 1000) / 1000;
const lat = (s: LatencySummary) => ({ count: s.count, p50: ms(s.p50Ms), p99: ms(s.p99Ms), mean: ms(s.meanMs), max: ms(s.maxMs) });

function mismatchJson(m: Mismatch) {
  return { offset: m.offset, during: m.during, expected_tag: m.expectedTag, found: m.found };
}

function describeMismatch(m: Mismatch): string {
  const f = m.found;
  const found = f.kind === 'zero' ? 'zeroes'
    : f.kind === 'workload' ? `tag ${f.tag} phase ${f.phase}${f.intact ? '' : ' (damaged)'}${f.seed !== 0 ? ` seed ${f.seed}` : ''}`
      : `other data (${f.head}…)`;
  const want = m.expectedTag === 0 ? 'the base image' : `tag ${m.expectedTag}`;
  return `page at ${m.offset} (${m.during}): expected ${want}, found ${found}`;
}

function buildReport(p: Parsed, uri: string, size: number, r: ResolvedProfile, res: ExecutorResult, fin: FinalVerifyResult | undefined, mismatches: Mismatch[]) {
  return {
    profile: p.profile,
    nbd: uri,
    seed: p.seed,
    image_bytes: size,
    block_size: p.blockSize,
    link_bits_per_s: p.bandwidth,
    duration_s: p.durationMs / 1000,
    elapsed_s: res.elapsedMs / 1000,
    target: {
      iops: r.iops, read_iops: r.readIops, write_iops: r.writeIops,
      dirty_bytes_per_s: r.targetDirtyBytesPerSecond, dirty_share_of_link: r.profile.dirtyShareOfLink,
    },
    ops: res.ops, reads: res.reads, writes: res.writes, dup_writes: res.dupWrites,
    bytes_read: res.bytesRead, bytes_written: res.bytesWritten,
    iops: res.iops, mb_per_s: res.mbPerSecond,
    latency_ms: { read: lat(res.latency.read), write: lat(res.latency.write) },
    response_ms: { read: lat(res.response.read), write: lat(res.response.write) },
    dirty_bytes_per_s: res.dirtiedBytesPerSecond,
    dirty_target_bytes_per_s: r.targetDirtyBytesPerSecond,
    dirty_ratio: r.targetDirtyBytesPerSecond > 0 ? res.dirtiedBytesPerSecond / r.targetDirtyBytesPerSecond : null,
    switch_over: res.switchOver ? {
      at_s: res.switchOver.atMs / 1000, connect_ms: ms(res.switchOver.connectMs), stall_ms: ms(res.switchOver.stallMs),
      reissued: res.switchOver.reissued, late_completions_on_primary: res.switchOver.lateCompletionsOnPrimary, reason: res.switchOver.reason,
    } : null,
    verify: {
      pages_checked: res.verify.pagesChecked,
      pages_skipped: res.verify.pagesSkipped,
      mismatches: res.verify.mismatches + (fin?.mismatches ?? 0),
      read_mismatches: res.verify.mismatches,
      first_mismatches: mismatches.map(mismatchJson),
      final: fin ? { scope: fin.scope, pages_checked: fin.pagesChecked, bytes_read: fin.bytesRead, mismatches: fin.mismatches, duration_s: fin.durationMs / 1000 } : null,
    },
    per_second: res.perSecond.map((s) => ({
      s: s.second, reads: s.reads, writes: s.writes, bytes_read: s.bytesRead, bytes_written: s.bytesWritten,
      mean_latency_ms: ms(s.meanLatencyMs), max_latency_ms: ms(s.maxLatencyMs), dirtied_bytes: s.dirtiedBytes,
      backlog: s.backlog, disk: s.disk,
    })),
    stopped: res.stopped,
    error: res.error ? { code: res.error.code, message: res.error.message } : null,
  };
}

const mbs = (bytesPerSecond: number) => `${(bytesPerSecond / 1e6).toFixed(2)} MB/s`;

function progressLine(s: SecondStats): string {
  const n = s.reads + s.writes;
  return `  ${String(s.second + 1).padStart(4)}s  ${String(n).padStart(6)} ops  ${mbs(s.bytesRead + s.bytesWritten).padStart(11)}  ` +
    `lat mean ${formatDuration(s.meanLatencyMs)} max ${formatDuration(s.maxLatencyMs)}  dirtied ${mbs(s.dirtiedBytes)}  backlog ${s.backlog}` +
    (s.disk === 'both' ? '  [switched]' : s.disk === 'secondary' ? '  (secondary)' : '');
}

function humanReport(rep: ReturnType<typeof buildReport>, res: ExecutorResult, fin: FinalVerifyResult | undefined, mismatches: Mismatch[]): string {
  const L: string[] = [];
  const l = (s: LatencySummary) => s.count ? `p50 ${formatDuration(s.p50Ms)}, p99 ${formatDuration(s.p99Ms)}, mean ${formatDuration(s.meanMs)}` : '-';
  L.push(`result after ${formatDuration(res.elapsedMs)}${res.stopped ? ' (stopped early)' : ''}:`);
  L.push(`  ops          ${res.ops} (${res.reads} reads, ${res.writes} writes${res.dupWrites ? `, ${res.dupWrites} duplicate` : ''})`);
  L.push(`  throughput   ${res.iops.toFixed(1)} IOPS, ${res.mbPerSecond.toFixed(2)} MB/s (target ${rep.target.iops.toFixed(1)} IOPS)`);
  L.push(`  latency      read  ${l(res.latency.read)}   (issue → completion)`);
  L.push(`               write ${l(res.latency.write)}`);
  L.push(`  response     read  ${l(res.response.read)}   (scheduled arrival → completion, incl. queueing)`);
  L.push(`               write ${l(res.response.write)}`);
  if (rep.target.dirty_bytes_per_s > 0) {
    L.push(`  dirtied      ${mbs(res.dirtiedBytesPerSecond)} of distinct blocks per second (target ${mbs(rep.target.dirty_bytes_per_s)}, ${((rep.dirty_ratio ?? 0) * 100).toFixed(0)} %)`);
  }
  const so = res.switchOver;
  if (so) {
    L.push(`  switch-over  at ${formatDuration(so.atMs)}: connected in ${formatDuration(so.connectMs)}, I/O stalled ${formatDuration(so.stallMs)}, ${so.reissued} requests re-issued` +
      (so.lateCompletionsOnPrimary ? `, ${so.lateCompletionsOnPrimary} late completions on the primary` : ''));
  }
  L.push(`  verify       ${res.verify.pagesChecked} pages checked on reads, ${res.verify.pagesSkipped} skipped (never written${rep.verify.final?.scope === 'whole-disk' || res.verify.pagesSkipped === 0 ? '' : ', no --verify-base'}): ${res.verify.mismatches} mismatches`);
  if (fin) L.push(`  final verify ${fin.scope === 'whole-disk' ? 'whole disk' : 'every written page'}: ${fin.pagesChecked} pages in ${formatDuration(fin.durationMs)}, ${fin.mismatches} mismatches`);
  for (const m of mismatches.slice(0, 10)) L.push(`    MISMATCH ${describeMismatch(m)}`);
  if (mismatches.length > 10) L.push(`    … (${rep.verify.mismatches} in all; --json lists the first ${mismatches.length})`);
  if (res.error) L.push(`  error        ${res.error.message}`);
  return L.join('\n') + '\n';
}

const HELP = `
Profiles (pinned to the link: distinct bytes newly dirtied per second, as a share of --bandwidth):
${PROFILE_NAMES.map((n) => `  ${n.padEnd(9)} ${PROFILES[n].description}`).join('\n')}

Every read is verified against what the workload wrote (pages it never wrote are compared with
--verify-base if given, else skipped). Exit code 3 if any page differs.

Examples:
  flimcd export --image vm.img --listen unix:/tmp/vm.sock &
  flimcd load --nbd unix:/tmp/vm.sock --profile moderate --duration 30s
  flimcd load --nbd tcp:10.0.0.5:10809 --export vm --profile heavy --bandwidth 1Gbit --json
  flimcd load --nbd unix:/run/src.sock --then unix:/run/dst.sock --profile mail --duration 2m --final-verify
  flimcd load --nbd unix:/tmp/vm.sock --profile light --verify-base vm-before.img --final-verify`;

export function registerLoad(program: Command): void {
  addLogOptions(program
    .command('load'))
    .description('Drive a synthetic guest workload (Iometer-like profile) against an NBD export, verify every read, measure latency and dirty rate, and follow a cut-over to a second export.')
    .requiredOption('--nbd <addr>', 'NBD server to load: unix:PATH or tcp:HOST:PORT')
    .option('--export <name>', 'export name', '')
    .option('--then <addr>', 'NBD server to continue on when the first answers ESHUTDOWN or hangs up (cut-over)')
    .option('--then-export <name>', 'export name on --then (default: --export)')
    .requiredOption('--profile <name>', `workload profile: ${PROFILE_NAMES.join(', ')}`)
    .option('--duration <time>', 'how long to generate requests (e.g. 30s, 2m)', '60s')
    .option('--seed <n>', 'workload and content seed', '1')
    .option('--bandwidth <rate>', 'link bandwidth the profile is pinned to (e.g. 100Mbit, 1Gbit)', '100Mbit')
    .option('--block-size <size>', 'tracking block size for the dirty rate', '64KiB')
    .option('--queue-depth <n>', 'most requests in flight', '16')
    .option('--verify-base <file>', 'raw image the disk held before the run: also verify pages the workload never wrote')
    .option('--final-verify', 'after the run, read back every written page (with --verify-base: the whole disk)')
    .option('--json', 'print the report as one JSON object')
    .addHelpText('after', HELP)
    .action(async (o: LoadOptions) => {
      const p = parseOptions(o);
      const say = (s: string) => {
        if (!o.json) process.stdout.write(s);
      };
      const primary = await NbdClient.connect(p.nbd, { exportName: p.exportName });
      const opened: Disk[] = [primary];
      let expected: ExpectedDisk | undefined;
      try {
        const resolved = resolveProfile(p.profile as (typeof PROFILE_NAMES)[number], {
          linkBitsPerSecond: p.bandwidth, imageBytes: primary.size, blockSize: p.blockSize,
        });
        expected = await ExpectedDisk.create(primary.size, p.seed, { base: o.verifyBase });
        const uri = nbdUri(p.nbd, p.exportName);
        say(`flimcd load: profile ${p.profile} on ${uri} (${formatBytes(primary.size)}), link ${formatBitRate(p.bandwidth)}, seed ${p.seed}, ${formatDuration(p.durationMs)}\n`);
        say(`  target ${resolved.iops.toFixed(1)} IOPS (${resolved.readIops.toFixed(1)} read, ${resolved.writeIops.toFixed(1)} write), ` +
          `dirtying ${mbs(resolved.targetDirtyBytesPerSecond)} (${(resolved.profile.dirtyShareOfLink * 100).toFixed(0)} % of the link)\n`);
        const switchTo = p.then
          ? async () => {
            const d = await NbdClient.connect(p.then!, { exportName: p.thenExport });
            opened.push(d);
            if (d.size !== primary.size) throw new FlimcdError(`--then export is ${d.size} bytes, the first one ${primary.size}`, ErrorCode.SIZE_MISMATCH);
            if (!o.json) process.stderr.write(`flimcd load: cut-over: continuing on ${formatAddress(p.then!)}\n`);
            return d;
          }
          : undefined;
        const tty = !o.json && process.stderr.isTTY === true;
        const exec = new WorkloadExecutor({
          disk: primary, switchTo, expected, durationMs: p.durationMs, queueDepth: p.queueDepth, blockSize: p.blockSize,
          requests: new RequestGenerator(resolved.params, p.seed),
          onSecond: tty ? (s) => process.stderr.write(progressLine(s) + '\n') : undefined,
        });
        onShutdownSignal(() => exec.stop());
        const res = await exec.run();
        let fin: FinalVerifyResult | undefined;
        if (o.finalVerify && !res.error) {
          say('  final verification…\n');
          fin = await finalVerify(exec.disk, expected, { queueDepth: p.queueDepth });
        }
        const mismatches = expected.stats.firstMismatches;
        const rep = buildReport(p, uri, primary.size, resolved, res, fin, mismatches);
        if (o.json) process.stdout.write(JSON.stringify(rep) + '\n');
        else say(humanReport(rep, res, fin, mismatches));
        if (res.error) throw res.error;
        if (rep.verify.mismatches > 0) {
          process.stderr.write(`flimcd load: verification FAILED: ${rep.verify.mismatches} page(s) differ from what was written\n`);
          process.exitCode = ExitCode.VERIFY_FAILED;
        }
      } finally {
        await expected?.close();
        await Promise.all(opened.map((d) => d.close().catch(() => {})));
      }
    });
}
