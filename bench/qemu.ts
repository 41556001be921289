/**
 * Whole-VM migration benchmark: flimcd against QEMU's own storage migration,
 * with a real guest (TCG) running the same self-checking workload, over the
 * same emulated WAN links.
 *
 *   npm run -s bench:qemu [-- --json] [--quick] [--runs N] [--size 256MiB] [--mem 128]
 *                         [--bandwidth 100Mbit] [--rtt 40ms] [--cases base,nobase]
 *
 * Method (testing/qemu/rig.ts does the work)
 * - Guest: Debian's cloud kernel + busybox initramfs (testing/qemu/guest.ts), TCG,
 *   `--mem` MiB RAM, one virtio-blk disk of `--size`. Workload ("moderate"):
 *   64 KiB O_DIRECT writes of random content, 80 % of them to a hot tenth of the
 *   disk, two 64 KiB reads per write, no pause; on these machines the guest
 *   writes about 2-3 MB/s, i.e. about 20 % of a 100 Mbit link. The measured
 *   rate is printed. Every run ends with the guest re-reading every block it
 *   wrote and the host comparing the image: a run that fails them is reported.
 * - Links: two WanProxy instances with the same bandwidth and RTT, one for the
 *   disk (flimcd's agent link; the mirror's NBD connection) and one for QEMU's
 *   RAM stream. Wire bytes are both proxies' bytes, both directions.
 * - (a) flimcd: source/target agents (algorithm flimcd, manual cut-over), and
 *   `migrateVm`: pre-copy, RAM migration with pause-before-switchover, storage
 *   cut-over at the pause, migrate-continue, post-copy to the verified end.
 *   (b) QEMU: the target QEMU exports its disk over NBD (TCP, through the disk
 *   link), `blockdev-mirror sync=full` until ready (copy-mode write-blocking,
 *   libvirt's --copy-storage-synchronous-writes: in the default background mode
 *   the mirror did not converge against this workload through a 40 ms RTT link
 *   within minutes; `--mirror-mode background` runs that), RAM
 *   migration with pause-before-switchover, `block-job-cancel` at the pause,
 *   migrate-continue: what libvirt `--copy-storage-all` does. QEMU 7.2's NBD
 *   server lacks TCP_NODELAY (docs/qemu.md); that stalls multi-chunk read
 *   replies, not the mirror's writes, so the TCP export is used as libvirt does.
 *   Both sides' RAM `max-bandwidth` is twice the link, so the link limits.
 * - Times: (a) from the start of the disk migration until every block is
 *   present at the target and verified; (b) from the first QMP command of the
 *   mirror until the VM runs at the target (everything is there then).
 *   Downtime: the source QEMU's STOP event to the target's RESUME event.
 * - Cases: `nobase` (the target starts with an empty disk) and `base` (the
 *   guest's disk is a base image with 30 % of its blocks changed, and the
 *   target already holds the base: QEMU's mirror target disk starts as a copy of
 *   it, which `sync=full` copies over anyway — that is the peer's real
 *   behaviour; `sync=top` with a backing file is not what libvirt does by
 *   default. flimcd gets the base through its replica index (`flimcd index add`)
 *   when this tree has it; `index_available` in the output says whether it did.
 * - Runs alternate the order of (a) and (b); results are medians over runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { ensureGuestKernel } from '../testing/qemu/guest.ts';
import { runVmMigration, replicaIndexAvailable, type VmMethod, type VmRigResult } from '../testing/qemu/rig.ts';
import { formatBytes } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';
import { median } from './stats.ts';
import { ratioOfMedians } from './headline.ts';

// Agent and orchestration logs would drown the table; FLIMCD_LOG_LEVEL brings them back.
const benchLog = log.child({ bench: 'qemu' });
benchLog.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';

const args = benchArgs('qemu', 'usage: npm run -s bench:qemu [-- --json] [--quick] [--runs N] [--size 256MiB] [--mem 128] [--bandwidth 100Mbit] [--rtt 40ms] [--cases base,nobase] [--mirror-mode write-blocking|background]\n', {
  json: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  runs: { type: 'string' },
  size: { type: 'string' },
  mem: { type: 'string' },
  bandwidth: { type: 'string', default: '100Mbit' },
  rtt: { type: 'string', default: '40ms' },
  cases: { type: 'string' },
  'mirror-mode': { type: 'string', default: 'write-blocking' },
});
const a = args.values;
const quick = a.quick;
const runs = args.int(a.runs, quick ? 1 : 3, '--runs');
const size = args.size(a.size, quick ? 64 * 1024 ** 2 : 256 * 1024 ** 2, '--size');
const memMiB = args.int(a.mem, 128, '--mem', 64);
const bandwidthBps = args.rate(a.bandwidth, 100e6, '--bandwidth');
const rttMs = args.duration(a.rtt, 40, '--rtt');
const cases = args.list(a.cases, ['base', 'nobase'] as const, '--cases');
if (a['mirror-mode'] !== 'write-blocking' && a['mirror-mode'] !== 'background') args.fail(`--mirror-mode must be write-blocking or background, got "${a['mirror-mode']}"`);
const indexAvailable = replicaIndexAvailable();
const say = (s: string) => process.stderr.write(s + '\n');

interface Sample {
  time_s: number;
  wire_bytes: number;
  downtime_ms: number;
  guest_write_Bps: number;
  checks_ok: boolean;
}
const samples: Record<string, Record<VmMethod, Sample[]>> = {};
const kernel = ensureGuestKernel();
const failures: string[] = [];

for (let run = 0; run < runs; run++) {
  for (const c of cases) {
    samples[c] ??= { flimcd: [], 'qemu-mirror': [] };
    const order: VmMethod[] = run % 2 === 0 ? ['flimcd', 'qemu-mirror'] : ['qemu-mirror', 'flimcd'];
    for (const method of order) {
      const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-qemu-'));
      try {
        say(`run ${run + 1}/${runs} ${c} ${method} ...`);
        const r: VmRigResult = await runVmMigration({
          dir, kernel, method, mirrorCopyMode: a['mirror-mode'] as 'background' | 'write-blocking', diskBytes: size, memMiB, bandwidthBps, rttMs, warmupMs: 2000, writesAtTarget: 25, seed: 11 + run,
          ...(c === 'base' ? { base: { changedShare: 0.3, indexAvailable } } : {}),
          log: benchLog,
        });
        const ok = r.guest.verdict === 'PASS' && r.host.mismatches === 0 && (method !== 'flimcd' || r.flimcd?.verified === true);
        if (!ok) failures.push(`${c}/${method} run ${run + 1}: guest ${r.guest.line}; host mismatches ${r.host.mismatches}`);
        samples[c][method].push({ time_s: r.time_total_s, wire_bytes: r.wire_bytes, downtime_ms: r.downtime_ms, guest_write_Bps: r.guest_write_Bps ?? 0, checks_ok: ok });
        say(`  ${r.time_total_s.toFixed(1)} s, ${formatBytes(r.wire_bytes)} (disk ${formatBytes(r.wire_bytes_disk_link)}, RAM ${formatBytes(r.wire_bytes_ram_link)}), downtime ${r.downtime_ms} ms, guest ${r.guest.verdict}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const result: Record<string, unknown> = {};
for (const c of cases) {
  const col = (method: VmMethod, k: keyof Sample) => samples[c]![method].map((s) => Number(s[k]));
  const m = (method: VmMethod, k: keyof Sample) => median(col(method, k));
  const ratio = (k: keyof Sample) => r3(ratioOfMedians(col('flimcd', k), col('qemu-mirror', k)));
  const f = { time_s: m('flimcd', 'time_s'), wire_bytes: m('flimcd', 'wire_bytes'), downtime_ms: m('flimcd', 'downtime_ms') };
  const q = { time_s: m('qemu-mirror', 'time_s'), wire_bytes: m('qemu-mirror', 'wire_bytes'), downtime_ms: m('qemu-mirror', 'downtime_ms') };
  result[c] = {
    flimcd: f,
    qemu_mirror: q,
    ratio: { time: ratio('time_s'), wire_bytes: ratio('wire_bytes'), downtime: ratio('downtime_ms') },
    guest_write_Bps: Math.round(median([...samples[c]!.flimcd, ...samples[c]!['qemu-mirror']].map((s) => s.guest_write_Bps))),
    checks_ok: [...samples[c]!.flimcd, ...samples[c]!['qemu-mirror']].every((s) => s.checks_ok),
  };
}
const head = (result.base ?? result.nobase) as { ratio: { time: number; wire_bytes: number; downtime: number } } | undefined;
const out = {
  bench: 'qemu',
  headline: head ? { time: head.ratio.time, wire_bytes: head.ratio.wire_bytes, downtime: head.ratio.downtime, case: result.base ? 'base' : 'nobase', goal_time: 0.5 } : null,
  ...result,
  index_available: indexAvailable,
  config: { runs, disk_bytes: size, mem_mib: memMiB, bandwidth_bps: bandwidthBps, rtt_ms: rttMs, workload: 'moderate: 64 KiB O_DIRECT writes, 80 % to a hot tenth, 2 reads per write', mirror_copy_mode: a['mirror-mode'], quick },
  failures,
};

if (a.json) process.stdout.write(JSON.stringify(out) + '\n');
else {
  const row = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(26) : x.padStart(14))).join('');
  process.stdout.write(`\nWhole-VM migration, ${formatBytes(size)} disk, ${memMiB} MiB RAM, ${a.bandwidth} / ${a.rtt} RTT, ${runs} run(s), medians\n`);
  for (const c of cases) {
    const r = result[c] as { flimcd: Record<string, number>; qemu_mirror: Record<string, number>; ratio: Record<string, number>; guest_write_Bps: number; checks_ok: boolean };
    process.stdout.write(`\n${c === 'base' ? `with a base image at the target${indexAvailable ? '' : ' (replica index NOT in this tree: flimcd sends everything)'}` : 'empty target'} — guest writes ${formatBytes(r.guest_write_Bps)}/s, checks ${r.checks_ok ? 'all passed' : 'FAILED'}\n`);
    process.stdout.write(row(['', 'flimcd', 'QEMU mirror', 'flimcd/QEMU']) + '\n');
    process.stdout.write(row(['total time (s)', r.flimcd.time_s!.toFixed(1), r.qemu_mirror.time_s!.toFixed(1), r.ratio.time!.toFixed(3)]) + '\n');
    process.stdout.write(row(['wire bytes', formatBytes(r.flimcd.wire_bytes!), formatBytes(r.qemu_mirror.wire_bytes!), r.ratio.wire_bytes!.toFixed(3)]) + '\n');
    process.stdout.write(row(['downtime (ms)', r.flimcd.downtime_ms!.toFixed(0), r.qemu_mirror.downtime_ms!.toFixed(0), r.ratio.downtime!.toFixed(3)]) + '\n');
  }
  if (failures.length) process.stdout.write(`\nFAILED checks:\n${failures.join('\n')}\n`);
}
if (failures.length) process.exitCode = 1;
