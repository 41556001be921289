/**
 * Whole-VM migration benchmark: flimcd against QEMU's own storage migration
 * at its best, with a real guest (TCG) running the same open-loop,
 * self-checking workload of real file content, over the same emulated WAN.
 * docs/qemu-vs-flimcd.md has both sides' settings and the numbers.
 *
 *   npm run -s bench:qemu [-- --json] [--quick] [--dry-run] [--runs N] [--size 256MiB] [--mem 128]
 *       [--bandwidth 100Mbit] [--rtt 40ms] [--cases base,empty] [--modes background,write-blocking]
 *       [--mirror-tune 64K/10M,256K/16M,1M/32M] [--ram multifd-zstd|plain] [--write-rate 256KiB]
 *       [--changed 0.15]
 *
 * Disks (bench/qemu-images.ts): ext4 built by `mke2fs -d` from /usr/share/doc,
 * changed through the file system (files of /usr/lib/python3 added, files
 * removed). Base case: the VM runs from a qcow2 overlay holding those changes
 * on a base the target holds; empty case: the VM runs from the whole disk as a
 * sparse raw image and the target starts with nothing. Every copy keeps holes.
 *
 * Guest (testing/qemu/guest.ts): 64 KiB O_DIRECT block writes of real file
 * content (chunks of a tar of a real tree, of its gzip, and of a real log
 * appended to a log area) at a fixed open-loop rate (`--write-rate`), one
 * O_DIRECT read per write; each method's achieved rate is reported apart.
 * Every run ends with the guest re-reading every block it wrote and the host
 * comparing the image the target VM uses with the guest's log and the
 * original: a run that fails either is reported and fails the bench.
 *
 * Methods (testing/qemu/rig.ts):
 * - flimcd: agents (algorithm flimcd) and `migrateVm`; base case `--format
 *   qcow2` at the source, the target writes an overlay on its base
 *   (`--backing`): blocks the overlay leaves to the base travel as from_backing.
 * - QEMU: `blockdev-mirror` into the target QEMU's NBD export (TCP, through
 *   the disk link), `sync=top` onto an overlay on the same base (base case, as
 *   libvirt `--copy-storage-inc`) or `sync=full` (empty case), target
 *   `detect-zeroes=unmap`; granularity/buf-size tuned from `--mirror-tune`;
 *   both copy modes measured, the better (lower median time_total) is the peer.
 * - RAM: the same for both: `--ram` multifd (4 channels) with zstd, the
 *   default (it moved a third of plain's bytes here and switched sooner), or
 *   plain; max-bandwidth twice the link, so the link limits. flimcd starts
 *   the RAM beside the disks' pre-copy (`--ram-start overlap`, the default
 *   here: the RAM has its own link), QEMU once the mirror is ready, as
 *   libvirt does (a RAM migration that reached the switch-over first would
 *   hold the paused guest until the mirror caught up).
 *
 * Clock, the same for both, target QEMU started before t0 where it can be:
 * time_to_switch from the first command of the migration until the VM runs
 * at the target; time_total until every block is at the target (QEMU: the
 * same moment; flimcd: the later of the switch and the post-copy's last
 * block; its verification of the whole image follows and is reported apart,
 * `verify_s`). flimcd's target QEMU can
 * only start once its agent serves (after HELLO), so its start-up counts
 * against flimcd. Downtime: source STOP to target RESUME.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { benchPlan, parseMirrorSettings, QEMU_BENCH_CASES, QEMU_DEFAULT_MIRROR, MIRROR_MODES, type BenchMethod, type MirrorSetting, type PlanStep, type QemuBenchCase } from './qemu-plan.ts';
import { median } from './stats.ts';
import { formatBytes } from '../src/util/units.ts';

const args = benchArgs('qemu', `usage: npm run -s bench:qemu [-- --json] [--quick] [--dry-run] [--runs N] [--size 256MiB] [--mem 128]
    [--bandwidth 100Mbit] [--rtt 40ms] [--cases base,empty] [--modes background,write-blocking]
    [--mirror-tune 64K/10M,256K/16M,1M/32M] [--ram multifd-zstd|plain] [--ram-start overlap|converged]
    [--write-rate 256KiB] [--changed 0.15]
`, {
  json: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  runs: { type: 'string' },
  size: { type: 'string' },
  mem: { type: 'string' },
  bandwidth: { type: 'string', default: '100Mbit' },
  rtt: { type: 'string', default: '40ms' },
  cases: { type: 'string' },
  modes: { type: 'string' },
  'mirror-tune': { type: 'string' },
  ram: { type: 'string', default: 'multifd-zstd' },
  'ram-start': { type: 'string', default: 'overlap' },
  'write-rate': { type: 'string' },
  changed: { type: 'string' },
});
const a = args.values;
const quick = a.quick;
const runs = args.int(a.runs, quick ? 1 : 3, '--runs');
const size = args.size(a.size, quick ? 64 * 1024 ** 2 : 256 * 1024 ** 2, '--size');
if (size % (1024 * 1024) !== 0 || size < 32 * 1024 * 1024) args.fail(`--size must be a whole number of MiB, at least 32MiB, got "${a.size}"`);
const memMiB = args.int(a.mem, 128, '--mem', 64);
const bandwidthBps = args.rate(a.bandwidth, 100e6, '--bandwidth');
const rttMs = args.duration(a.rtt, 40, '--rtt');
const cases = args.list(a.cases, QEMU_BENCH_CASES, '--cases');
const modes = args.list(a.modes, MIRROR_MODES, '--modes');
if (!cases.length) args.fail('--cases: give at least one of base, empty');
if (!modes.length) args.fail('--modes: give at least one of background, write-blocking');
let mirror: MirrorSetting[] = [QEMU_DEFAULT_MIRROR];
try {
  mirror = parseMirrorSettings(a['mirror-tune'] ?? (quick ? '64K/10M' : '64K/10M,256K/16M,1M/32M'));
} catch (e) {
  args.fail((e as Error).message);
}
if (a.ram !== 'plain' && a.ram !== 'multifd-zstd') args.fail(`--ram must be plain or multifd-zstd, got "${a.ram}"`);
const ram = a.ram as 'plain' | 'multifd-zstd';
if (a['ram-start'] !== 'overlap' && a['ram-start'] !== 'converged') args.fail(`--ram-start must be overlap or converged, got "${a['ram-start']}"`);
// The RAM has its own link here: flimcd starts it beside the disks' pre-copy (base case, one run each,
// quiet: 5.5-5.7 s against 7.6 s with `converged`).
const ramStart = a['ram-start'] as 'overlap' | 'converged';
// A rate the TCG guest keeps up with under load when nothing holds its writes: a lower achieved rate is the method's doing.
const writeBytesPerS = args.size(a['write-rate'], 256 * 1024, '--write-rate');
const WRITE_BS = 65536;
const writesPerS = Math.max(1, Math.round(writeBytesPerS / WRITE_BS));
const changedShare = args.num(a.changed, 0.15, '--changed', 0.01);
if (changedShare > 0.4) args.fail(`--changed must be at most 0.4 (the base fills about half the disk), got "${a.changed}"`);
const plan = benchPlan({ cases, runs, modes, mirror });
const ramMaxBandwidth = Math.round((bandwidthBps / 8) * 2);
const config = {
  runs, disk_bytes: size, mem_mib: memMiB, bandwidth_bps: bandwidthBps, rtt_ms: rttMs, cases, modes,
  mirror_tune: mirror.map((m) => `${m.granularity}/${m.bufSize}`), ram, ram_max_bandwidth_Bps: ramMaxBandwidth, flimcd_ram_start: ramStart,
  workload: { write_bytes: WRITE_BS, target_writes_per_s: writesPerS, target_write_Bps: writesPerS * WRITE_BS, reads_per_write: 1, content: 'real: tar, tar.gz and log chunks', open_loop: true },
  changed_share: changedShare, quick,
};
const say = (s: string) => process.stderr.write(s + '\n');

if (a['dry-run']) {
  const out = { bench: 'qemu', dry_run: true, config, plan };
  if (a.json) process.stdout.write(JSON.stringify(out) + '\n');
  else for (const s of plan) process.stdout.write(`${s.phase} run ${s.run + 1} ${s.case} ${s.method}${s.mirror ? ` granularity ${s.mirror.granularity} buf-size ${s.mirror.bufSize}` : ''}\n`);
  process.exit(0);
}

// The run's modules load only past argument parsing: a dry run needs no guest.
const { ensureGuestKernel, realContentFiles } = await import('../testing/qemu/guest.ts');
const { runVmMigration } = await import('../testing/qemu/rig.ts');
const { buildQemuBenchImages } = await import('./qemu-images.ts');
const { log } = await import('../src/util/log.ts');
const benchLog = log.child({ bench: 'qemu' });
// Agent and orchestration logs would drown the table; FLIMCD_LOG_LEVEL brings them back.
benchLog.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';

interface Sample {
  time_total_s: number;
  time_to_switch_s: number;
  wire_bytes: number;
  wire_bytes_disk: number;
  wire_bytes_ram: number;
  downtime_ms: number;
  guest_write_Bps: number;
  load1: number;
  checks_ok: boolean;
  mirror?: MirrorSetting;
  /** Where the time went: flimcd (until migrateVm, pre-copy, RAM with the cut-over, post-copy to verified) or QEMU (mirror until ready, then RAM). */
  stages: Record<string, number>;
  /** flimcd's own report, the parts that say where its time and bytes went. */
  flimcd?: Record<string, unknown>;
}

const work = mkdtempSync(join(tmpdir(), 'flimcd-bench-qemu-'));
const failures: string[] = [];
const tuneSamples: Array<{ case: QemuBenchCase; method: BenchMethod; mirror: MirrorSetting; sample: Sample | null; error?: string }> = [];
const samples: Record<string, Partial<Record<BenchMethod, Sample[]>>> = {};
const r3 = (x: number) => Math.round(x * 1000) / 1000;
try {
  const kernel = ensureGuestKernel();
  say(`building the disks (ext4 from real trees, ${formatBytes(size)}) ...`);
  const images = buildQemuBenchImages(join(work, 'images'), { diskBytes: size, changedShare });
  const guestFiles = realContentFiles(work);
  say(`  base files ${formatBytes(images.baseFileBytes)}, changed files ${formatBytes(images.changedFileBytes)}, overlay data ${formatBytes(images.overlayDataBytes)}`);
  const best: Partial<Record<string, MirrorSetting>> = {};

  const runOne = async (s: PlanStep, m: MirrorSetting | undefined): Promise<Sample> => {
    const dir = mkdtempSync(join(work, 'run-'));
    try {
      const load1 = loadavg()[0]!;
      const r = await runVmMigration({
        dir, kernel, method: s.method === 'flimcd' ? 'flimcd' : 'qemu-mirror', diskBytes: size, memMiB, bandwidthBps, rttMs,
        warmupMs: 2000, writesAtTarget: 25, seed: 11 + s.run, log: benchLog,
        images: s.case === 'base'
          ? { original: images.vmRaw, vm: { file: images.vmQcow2, format: 'qcow2' }, targetBase: images.baseAtTarget }
          : { original: images.vmRaw, vm: { file: images.vmRaw, format: 'raw' } },
        guestFiles, workload: { rate: writesPerS, content: 'real', reads: 1 },
        ram, ramMaxBandwidth,
        ...(s.method === 'flimcd' ? { ramStart } : {}),
        ...(s.method !== 'flimcd' ? { mirrorCopyMode: s.method === 'qemu-background' ? 'background' as const : 'write-blocking' as const, ...(m ? { mirrorTuning: m } : {}) } : {}),
      });
      const ok = r.guest.verdict === 'PASS' && r.host.mismatches === 0 && (s.method !== 'flimcd' || r.flimcd?.verified === true);
      if (!ok) failures.push(`${s.phase} ${s.case}/${s.method} run ${s.run + 1}: guest ${r.guest.line}; host mismatches ${r.host.mismatches}${r.host.firstMismatch ? ` (${r.host.firstMismatch})` : ''}`);
      const sample: Sample = {
        time_total_s: r3(r.time_total_s), time_to_switch_s: r3(r.time_to_switch_s ?? r.time_total_s), wire_bytes: r.wire_bytes, wire_bytes_disk: r.wire_bytes_disk_link, wire_bytes_ram: r.wire_bytes_ram_link,
        downtime_ms: r.downtime_ms, guest_write_Bps: Math.round(r.guest_write_Bps ?? 0), load1: r3((load1 + loadavg()[0]!) / 2), checks_ok: ok, ...(m ? { mirror: m } : {}),
        stages: r.vm
          ? { until_migrate_vm_s: r3((r.time_to_switch_s ?? 0) - (r.vm.time_total_s - r.vm.time_postcopy_s)), precopy_s: r3(r.vm.time_precopy_s), ram_s: r3(r.vm.time_ram_s), postcopy_s: r3(r.vm.time_postcopy_s), verify_s: r3(r.verify_s ?? 0), storage_cutover_ms: r.vm.storage_cutover_ms }
          : r.peer ? { mirror_ready_s: r3(r.peer.mirror_ready_s), ram_s: r3(r.peer.ram_s) } : {},
        ...(r.flimcd ? { flimcd: { rounds: r.flimcd.rounds, cutover_reason: r.flimcd.cutover_reason, blocks: r.flimcd.blocks, wire_bytes_breakdown: r.flimcd.wire_bytes_breakdown, compression: r.flimcd.compression, link: r.flimcd.link, cpu: r.flimcd.cpu } } : {}),
      };
      say(`  stages ${JSON.stringify(sample.stages)}${r.vm ? `, cut-over ${r.vm.storage_cutover_ms} ms, missing at cut-over ${r.vm.missing_at_cutover}` : ''}`);
      say(`  switch ${sample.time_to_switch_s.toFixed(1)} s, total ${sample.time_total_s.toFixed(1)} s, wire ${formatBytes(r.wire_bytes)} (disk ${formatBytes(r.wire_bytes_disk_link)}, RAM ${formatBytes(r.wire_bytes_ram_link)}), downtime ${r.downtime_ms} ms, guest ${formatBytes(sample.guest_write_Bps)}/s ${r.guest.verdict}, host mismatches ${r.host.mismatches}, load ${sample.load1}`);
      return sample;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  for (const s of plan) {
    const key = `${s.case}/${s.method}`;
    const m = s.mirror ?? (s.method === 'flimcd' ? undefined : best[key]);
    say(`${s.phase} ${s.phase === 'measure' ? `run ${s.run + 1}/${runs} ` : ''}${key}${m ? ` granularity ${formatBytes(m.granularity)} buf-size ${formatBytes(m.bufSize)}` : ''} ...`);
    if (s.phase === 'tune') {
      try {
        tuneSamples.push({ case: s.case, method: s.method, mirror: s.mirror!, sample: await runOne(s, s.mirror) });
      } catch (e) {
        // A setting that does not converge in time is a result of the tuning, not a failed bench.
        tuneSamples.push({ case: s.case, method: s.method, mirror: s.mirror!, sample: null, error: (e as Error).message.split('\n')[0] });
        say(`  failed: ${(e as Error).message.split('\n')[0]}`);
      }
      const tried = tuneSamples.filter((t) => t.case === s.case && t.method === s.method && t.sample);
      const fastest = tried.sort((x, y) => x.sample!.time_total_s - y.sample!.time_total_s)[0];
      if (fastest) best[key] = fastest.mirror;
      continue;
    }
    try {
      ((samples[s.case] ??= {})[s.method] ??= []).push(await runOne(s, m));
    } catch (e) {
      failures.push(`${key} run ${s.run + 1}: ${(e as Error).message.split('\n')[0]}`);
      say(`  failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

type Summary = { time_total_s: number; time_to_switch_s: number; wire_bytes: number; wire_bytes_disk: number; wire_bytes_ram: number; downtime_ms: number; guest_write_Bps: number; load1: number; runs: number; mirror?: MirrorSetting; stages: Record<string, number> };
const summarize = (xs: Sample[]): Summary => ({
  time_total_s: median(xs.map((x) => x.time_total_s)), time_to_switch_s: median(xs.map((x) => x.time_to_switch_s)),
  wire_bytes: median(xs.map((x) => x.wire_bytes)), wire_bytes_disk: median(xs.map((x) => x.wire_bytes_disk)), wire_bytes_ram: median(xs.map((x) => x.wire_bytes_ram)),
  downtime_ms: median(xs.map((x) => x.downtime_ms)), guest_write_Bps: Math.round(median(xs.map((x) => x.guest_write_Bps))), load1: r3(median(xs.map((x) => x.load1))), runs: xs.length,
  ...(xs[0]?.mirror ? { mirror: xs[0].mirror } : {}),
  stages: Object.fromEntries(Object.keys(xs[0]?.stages ?? {}).map((k) => [k, median(xs.map((x) => x.stages[k] ?? 0))])),
});
const perCase: Record<string, unknown> = {};
const ratios: Partial<Record<QemuBenchCase, { time_total: number; time_to_switch: number; wire_bytes: number; downtime: number; peer: BenchMethod }>> = {};
for (const c of cases) {
  const byMethod = samples[c] ?? {};
  const sums: Partial<Record<BenchMethod, Summary>> = {};
  for (const [method, xs] of Object.entries(byMethod) as Array<[BenchMethod, Sample[]]>) if (xs.length) sums[method] = summarize(xs);
  // The peer: QEMU's copy mode with the lower median time_total.
  const peer = (Object.keys(sums) as BenchMethod[]).filter((k) => k !== 'flimcd').sort((x, y) => sums[x]!.time_total_s - sums[y]!.time_total_s)[0];
  const f = sums.flimcd;
  const q = peer ? sums[peer] : undefined;
  if (f && q && peer) {
    ratios[c] = {
      time_total: r3(f.time_total_s / q.time_total_s), time_to_switch: r3(f.time_to_switch_s / q.time_to_switch_s),
      wire_bytes: r3(f.wire_bytes / q.wire_bytes), downtime: r3(f.downtime_ms / q.downtime_ms), peer,
    };
  }
  perCase[c] = { ...sums, peer: peer ?? null, ratio: ratios[c] ?? null };
}
const goals = { base: { time_total: 0.5, wire_bytes: 0.7, downtime: 1.0 }, empty: { time_total: 0.7, downtime: 1.0 } };
const out = {
  bench: 'qemu',
  headline: ratios.base ? { ...ratios.base, case: 'base', goals: goals.base, ...(ratios.empty ? { empty: { ...ratios.empty, goals: goals.empty } } : {}) } : ratios.empty ? { empty: { ...ratios.empty, goals: goals.empty } } : null,
  ...perCase,
  tuning: tuneSamples.map((t) => ({ case: t.case, method: t.method, granularity: t.mirror.granularity, buf_size: t.mirror.bufSize, time_total_s: t.sample?.time_total_s ?? null, wire_bytes: t.sample?.wire_bytes ?? null, load1: t.sample?.load1 ?? null, error: t.error ?? null })),
  load_average: loadavg().map(r3),
  samples,
  config,
  failures,
};

if (a.json) process.stdout.write(JSON.stringify(out) + '\n');
else {
  const row = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(22) : x.padStart(21))).join('');
  process.stdout.write(`\nWhole-VM migration, ${formatBytes(size)} ext4 disk, ${memMiB} MiB RAM (${ram}), ${a.bandwidth} / ${a.rtt} RTT, guest target ${formatBytes(writesPerS * WRITE_BS)}/s, ${runs} run(s), medians\n`);
  if (tuneSamples.length) {
    process.stdout.write('\nmirror tuning (one run each)\n');
    for (const t of tuneSamples) process.stdout.write(`  ${t.case} ${t.method} granularity ${formatBytes(t.mirror.granularity)} buf-size ${formatBytes(t.mirror.bufSize)}: ${t.sample ? `${t.sample.time_total_s.toFixed(1)} s, ${formatBytes(t.sample.wire_bytes)}, load ${t.sample.load1}` : `failed (${t.error})`}\n`);
  }
  for (const c of cases) {
    const pc = perCase[c] as Partial<Record<BenchMethod, Summary>> & { peer: BenchMethod | null };
    const methods = (['flimcd', 'qemu-background', 'qemu-write-blocking'] as const).filter((k) => pc[k]);
    process.stdout.write(`\n${c === 'base' ? 'base at the target (qcow2 overlay; QEMU sync=top, flimcd from_backing)' : 'empty target (raw; QEMU sync=full)'}; QEMU peer: ${pc.peer ?? 'none'}\n`);
    process.stdout.write(row(['', ...methods, 'flimcd/peer']) + '\n');
    const ratio = ratios[c];
    const line = (label: string, f: (s: Summary) => string, rk?: keyof NonNullable<typeof ratio>) => process.stdout.write(row([label, ...methods.map((k) => f(pc[k]!)), ratio && rk ? String(ratio[rk]) : '']) + '\n');
    line('time to switch (s)', (s) => s.time_to_switch_s.toFixed(1), 'time_to_switch');
    line('time total (s)', (s) => s.time_total_s.toFixed(1), 'time_total');
    line('wire bytes', (s) => formatBytes(s.wire_bytes), 'wire_bytes');
    line('  disk link', (s) => formatBytes(s.wire_bytes_disk));
    line('  RAM link', (s) => formatBytes(s.wire_bytes_ram));
    line('downtime (ms)', (s) => s.downtime_ms.toFixed(0), 'downtime');
    line('guest writes', (s) => `${formatBytes(s.guest_write_Bps)}/s`);
    line('load (1 min)', (s) => s.load1.toFixed(2));
    line('mirror gran/buf', (s) => (s.mirror ? `${s.mirror.granularity / 1024}K/${s.mirror.bufSize / 1024 ** 2}M` : '-'));
  }
  if (failures.length) process.stdout.write(`\nFAILED:\n${failures.join('\n')}\n`);
}
if (failures.length) process.exitCode = 1;
