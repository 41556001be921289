/**
 * qcow2 benchmark (issue 19, "Measured"): a VM's thin qcow2 overlay migrated
 * to a target that holds the base, against the same disk as a raw image to an
 * empty target, through the WAN emulator.
 *
 *   npm run -s bench:qcow2 [-- --json] [--quick] [--runs N] [--bandwidth 100Mbit] [--rtt 40ms] [--via fuse|rebase] [--keep]
 *
 * Images:
 * - base.qcow2: an ext4 file system made by `mke2fs -d` from this machine's
 *   /usr/share/doc (real text, gzip and HTML files; --quick takes ~12 MiB of
 *   it), converted with `qemu-img convert -O qcow2`.
 * - vm.qcow2: `qemu-img create -f qcow2 -b base.qcow2 -F qcow2`, then changed
 *   through the file system: files added (text logs, random blobs, copies of
 *   real program files), rewritten (an edited header in front of the old
 *   content) and deleted, with `debugfs -w` on the overlay exported as a file
 *   by qemu-storage-daemon's FUSE export, so every write goes through QEMU's
 *   qcow2 driver into the overlay as a guest's would. Where FUSE is not
 *   available (or with `--via rebase`) the same debugfs commands run on a raw
 *   copy of the base, and `qemu-img rebase` of an empty overlay on that copy
 *   onto base.qcow2 writes the clusters whose content differs into the overlay
 *   (`changes_via` in the JSON says which).
 * - vm.raw: the chain converted to a sparse raw image (`qemu-img convert -O raw`).
 *
 * Cases (the VM is idle: every byte on the wire is attributable to the disk):
 * - qcow2: `--format qcow2` at the source, `--backing` (its own copy of
 *   base.qcow2) at the target, which writes a new overlay.
 * - raw:   vm.raw to an empty raw target, no base, no index.
 *
 * headline.wire_over_overlay = flimcd's wire bytes (qcow2 case, median over
 * runs; payload and framing, both directions) / the overlay's allocated data
 * after zstd: every 64 KiB cluster the overlay allocates with data (`qemu-img
 * map --output=json`, depth 0) compressed on its own with zstd at the level the
 * agents reported using (the highest over runs), raw when that is smaller.
 * Zero clusters in the overlay travel as holes and are counted apart. Goal <= 1.05.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { median } from './stats.ts';
import { ratioOfMedians } from './headline.ts';
import { pairBench, sh, tableRow, vmFiles, TOOL_PATH, PAIR_BENCH_BLOCK as BS } from './pair-bench.ts';
import type { MigrationReport } from '../src/migrate/report.ts';
import { formatBytes } from '../src/util/units.ts';

const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;
const GOAL = 1.05;
/** The level when a report names none (compression off): the policy's highest. */
const FALLBACK_LEVEL = 9;

const bench = pairBench('qcow2', 'usage: npm run -s bench:qcow2 [-- --json] [--quick] [--runs N] [--bandwidth 100Mbit] [--rtt 40ms] [--via fuse|rebase] [--keep]\n', { rtt: '40ms', runs: 3 }, {
  via: { type: 'string' },
});
const args = bench.values;
const { runs, bandwidthBps, rttMs, say } = bench;
const via = args.via ?? 'fuse';
if (via !== 'fuse' && via !== 'rebase') bench.parsed.fail(`--via must be fuse or rebase, got "${via}"`);

/** Regular files under `root` (symlinks skipped), sorted, with their sizes. */
function regularFiles(root: string): Array<{ path: string; size: number }> {
  const out: Array<{ path: string; size: number }> = [];
  for (const rel of (readdirSync(root, { recursive: true }) as string[]).sort()) {
    const st = lstatSync(join(root, rel));
    if (st.isFile()) out.push({ path: rel, size: st.size });
  }
  return out;
}

/** Copies whole package directories of /usr/share/doc into `dest` until `budget` bytes. */
function copyTree(src: string, dest: string, budget: number): number {
  mkdirSync(dest, { recursive: true });
  let bytes = 0;
  for (const name of readdirSync(src).sort()) {
    if (bytes >= budget) break;
    const from = join(src, name);
    if (lstatSync(from).isSymbolicLink()) continue;
    cpSync(from, join(dest, name), { recursive: true, verbatimSymlinks: true });
    bytes += regularFiles(join(dest, name)).reduce((s, f) => s + f.size, 0);
  }
  return bytes;
}

/** New files for the VM: text logs and random blobs (every third), deterministic. */
function newFiles(dir: string, seed: number, count: number, size: number): string[] {
  return vmFiles(dir, { seed, count, size, name: (i) => `new-${i}`, random: (i) => i % 3 === 2 });
}

interface Changes {
  commands: string[];
  added: number;
  rewritten: number;
  deleted: number;
}

/** debugfs commands for the VM's changes: files added, rewritten and deleted. */
function planChanges(dir: string, tree: string, quick: boolean): Changes {
  const files = regularFiles(tree).filter((f) => f.size >= 4096);
  const commands: string[] = ['mkdir /var-vm'];
  const added = newFiles(join(dir, 'added'), 1, quick ? 6 : 24, 512 * 1024);
  added.forEach((f, i) => commands.push(`write ${f} /var-vm/log-${i}`));
  // Real program files, as a package install would add.
  let extra = 0;
  const bin = regularFiles('/usr/bin').filter((f) => f.size > 16384 && f.size < 1024 * 1024).slice(0, quick ? 4 : 24);
  if (bin.length) commands.push('mkdir /opt-vm');
  for (const f of bin) {
    commands.push(`write ${join('/usr/bin', f.path)} /opt-vm/${f.path.replaceAll('/', '_')}`);
    extra++;
  }
  // Every 17th file rewritten (an edit at its head shifts all of it), every 23rd deleted.
  const edited = join(dir, 'edited');
  mkdirSync(edited, { recursive: true });
  let rewritten = 0;
  let deleted = 0;
  files.forEach((f, i) => {
    const inImage = `/${f.path}`;
    if (i % 17 === 5) {
      const p = join(edited, `e${i}`);
      writeFileSync(p, Buffer.concat([Buffer.from(`# edited on the VM, revision ${i}\n`), readFileSync(join(tree, f.path))]));
      commands.push(`rm ${inImage}`, `write ${p} ${inImage}`);
      rewritten++;
    } else if (i % 23 === 7) {
      commands.push(`rm ${inImage}`);
      deleted++;
    }
  });
  if (files.some((f) => /\s/.test(f.path))) throw new Error('a file name with white space: debugfs cannot take it');
  return { commands, added: added.length + extra, rewritten, deleted };
}

function isMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);
}

async function stopDaemon(qsd: ChildProcess): Promise<void> {
  if (qsd.exitCode !== null || qsd.signalCode !== null) return;
  const exited = new Promise<void>((r) => qsd.once('exit', () => r()));
  qsd.kill('SIGTERM');
  // It unmounts the export on SIGTERM; one that hangs is killed rather than hanging the bench.
  const hung = setTimeout(() => qsd.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(hung);
}

/** Applies debugfs commands to the overlay through qemu-storage-daemon's FUSE export; false when FUSE is unavailable. */
async function changeThroughFuse(dir: string, overlay: string, commands: string[]): Promise<boolean> {
  if (!existsSync('/dev/fuse')) return false;
  const mnt = join(dir, 'vm-fuse.img');
  writeFileSync(mnt, '');
  const qsd = spawn('qemu-storage-daemon', [
    '--blockdev', `driver=file,node-name=file,filename=${overlay}`,
    '--blockdev', 'driver=qcow2,node-name=vm,file=file',
    '--export', `type=fuse,id=fuse,node-name=vm,mountpoint=${mnt},writable=on`,
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PATH: TOOL_PATH } });
  let stderr = '';
  qsd.stderr?.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
  try {
    for (let i = 0; i < 100 && !isMounted(mnt); i++) {
      if (qsd.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!isMounted(mnt)) {
      say(`FUSE export unavailable (${stderr.trim().split('\n')[0] ?? 'not mounted'}); falling back to qemu-img rebase`);
      return false;
    }
    sh('debugfs', ['-w', '-f', '-', mnt], commands.join('\n') + '\n');
    return true;
  } finally {
    await stopDaemon(qsd);
    rmSync(mnt, { force: true });
  }
}

interface QemuMapEntry {
  start: number;
  length: number;
  depth: number;
  present?: boolean;
  zero: boolean;
  data: boolean;
}

/** The overlay's allocated clusters, each zstd-compressed on its own at `level` (raw when smaller); data read from the chain's raw image. */
function overlayBound(overlay: string, chainRaw: string, level: number): { data_clusters: number; data_bytes: number; zero_bytes: number; compressed_bytes: number } {
  const map = JSON.parse(sh('qemu-img', ['map', '--output=json', '-f', 'qcow2', overlay])) as QemuMapEntry[];
  const cctx = new zstd.CCtx();
  const dst = Buffer.allocUnsafe(zstd.compressBound(BS));
  const buf = Buffer.allocUnsafe(BS);
  const fd = openSync(chainRaw, 'r');
  const out = { data_clusters: 0, data_bytes: 0, zero_bytes: 0, compressed_bytes: 0 };
  try {
    for (const e of map) {
      if (e.depth !== 0) continue;
      if (!e.data) {
        if (e.zero) out.zero_bytes += e.length;
        continue;
      }
      const end = e.start + e.length;
      for (let off = e.start - (e.start % BS); off < end; off += BS) {
        const n = readSync(fd, buf, 0, BS, off);
        const b = buf.subarray(0, n);
        out.data_clusters++;
        out.data_bytes += n;
        out.compressed_bytes += Math.min(n, cctx.compress(dst, b, level));
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

function summary(reports: MigrationReport[]) {
  const col = (f: (r: MigrationReport) => number) => reports.map(f);
  const stat = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
  const last = reports[reports.length - 1]!;
  return {
    wire_bytes: stat(col((r) => r.wire_bytes)),
    time_s: stat(col((r) => r.time_total_s)),
    downtime_ms: stat(col((r) => r.downtime_ms)),
    time_precopy_s: median(col((r) => r.time_precopy_s)),
    rounds: median(col((r) => r.rounds)),
    from_backing_blocks: median(col((r) => r.blocks.from_backing)),
    sent_data_blocks: median(col((r) => r.blocks.sent_data)),
    sent_reference_blocks: median(col((r) => r.blocks.sent_reference)),
    zero_blocks: median(col((r) => r.blocks.zero)),
    wire_bytes_breakdown: last.wire_bytes_breakdown,
    compression_levels: col((r) => r.compression.level ?? FALLBACK_LEVEL),
  };
}

async function main(): Promise<void> {
  bench.requireTools(['mke2fs', 'debugfs', 'qemu-img', 'qemu-storage-daemon'], 'e2fsprogs qemu-utils');
  const loadBefore = loadavg();
  await bench.inTempDir('flimcd-bench-qcow2-', async (dir) => {
    const quick = args.quick;
    const imageSize = quick ? '48M' : '384M';
    const tree = join(dir, 'tree');
    const treeBytes = copyTree('/usr/share/doc', tree, quick ? 12 * 1024 * 1024 : Number.MAX_SAFE_INTEGER);
    say(`building images in ${dir}: ext4 ${imageSize} from /usr/share/doc (${formatBytes(treeBytes)} of files) …`);
    const baseRaw = join(dir, 'base.raw');
    sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', 'root_owner=0:0', '-d', tree, baseRaw, imageSize]);
    const base = join(dir, 'base.qcow2');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', baseRaw, base]);
    const overlay = join(dir, 'vm.qcow2');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
    const changes = planChanges(dir, tree, quick);
    let changesVia: 'fuse' | 'rebase' = 'fuse';
    if (via === 'rebase' || !(await changeThroughFuse(dir, overlay, changes.commands))) {
      changesVia = 'rebase';
      const vmRaw = join(dir, 'vm-changed.raw');
      copyFileSync(baseRaw, vmRaw);
      sh('debugfs', ['-w', '-f', '-', vmRaw], changes.commands.join('\n') + '\n');
      // An empty overlay on the changed disk, rebased onto the base: rebase writes exactly the clusters whose content differs.
      rmSync(overlay);
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vmRaw, '-F', 'raw', overlay]);
      sh('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
      rmSync(vmRaw);
    }
    rmSync(baseRaw);
    sh('qemu-img', ['check', '-q', overlay]);
    const chainRaw = join(dir, 'vm.raw');
    sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', overlay, chainRaw]);
    const targetBase = join(dir, 'target-base.qcow2');
    copyFileSync(base, targetBase);
    const imageBytes = statSync(chainRaw).size;
    say(`overlay: ${changes.added} files added, ${changes.rewritten} rewritten, ${changes.deleted} deleted (via ${changesVia}); ${formatBytes(statSync(overlay).size)} file`);

    const targets = { qcow2: join(dir, 'target.qcow2'), raw: join(dir, 'target.raw') };
    const reports = await bench.runCases(dir, [
      {
        name: 'qcow2', source: overlay, target: targets.qcow2, algorithm: 'flimcd',
        agents: { source: { format: 'qcow2' }, target: { backing: { file: targetBase, format: 'qcow2' } } },
        check: (dst) => sh('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'qcow2', overlay, dst]),
      },
      {
        name: 'raw', source: chainRaw, target: targets.raw, algorithm: 'flimcd',
        check: (dst) => sh('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', chainRaw, dst]),
      },
    ], { alternate: true, detail: (r) => `from_backing ${r.blocks.from_backing}, downtime ${r.downtime_ms} ms` });
    sh('qemu-img', ['check', '-q', targets.qcow2]);
    const qcow2 = summary(reports.qcow2);
    const raw = summary(reports.raw);
    const level = Math.max(...qcow2.compression_levels);
    const bound = overlayBound(overlay, chainRaw, level);
    const wireOverOverlay = qcow2.wire_bytes.median / bound.compressed_bytes;
    const out = {
      bench: 'qcow2',
      image_bytes: imageBytes,
      block_size: BS,
      link: { bandwidth_bps: bandwidthBps, rtt_ms: rttMs },
      runs,
      quick,
      // The 1-minute load average before and after: these machines are shared, and times move with it.
      load_average: { before: r3(loadBefore[0]!), after: r3(loadavg()[0]!) },
      overlay: { ...bound, compression_level: level, file_bytes: statSync(overlay).size, changes_via: changesVia, files_added: changes.added, files_rewritten: changes.rewritten, files_deleted: changes.deleted },
      goal: GOAL,
      headline: {
        wire_over_overlay: r3(wireOverOverlay),
        wire_qcow2_over_raw: r3(ratioOfMedians(reports.qcow2.map((r) => r.wire_bytes), reports.raw.map((r) => r.wire_bytes))),
        time_qcow2_over_raw: r3(ratioOfMedians(reports.qcow2.map((r) => r.time_total_s), reports.raw.map((r) => r.time_total_s))),
      },
      cases: { qcow2, raw },
      ...(args.keep ? { kept: { dir, source_overlay: overlay, target_overlay: targets.qcow2, source_raw: chainRaw, target_raw: targets.raw } } : {}),
    };
    bench.print(out, () => {
      const span = (s: { median: number; min: number; max: number }, f: (x: number) => string) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
      console.log(`\nbench:qcow2 — ${formatBytes(imageBytes)} ext4 disk, overlay data ${formatBytes(bound.data_bytes)} (${formatBytes(bound.compressed_bytes)} after zstd ${level}), ${args.bandwidth} / ${args.rtt} RTT, median (min–max) of ${runs} run(s)\n`);
      console.log(tableRow(['case', 'wire', 'time', 'downtime', 'from_backing', 'data blocks']));
      console.log(tableRow(Array<string>(6).fill('---')));
      for (const [name, s] of [['qcow2 overlay, target has base', qcow2], ['raw, empty target', raw]] as const) {
        console.log(tableRow([name, span(s.wire_bytes, formatBytes), span(s.time_s, (x) => `${x.toFixed(2)} s`), span(s.downtime_ms, (x) => `${x.toFixed(0)} ms`), String(s.from_backing_blocks), String(s.sent_data_blocks)]));
      }
      console.log(`\nload average (1 min): ${out.load_average.before} before, ${out.load_average.after} after`);
      console.log(`headline: wire_over_overlay ${out.headline.wire_over_overlay} (goal <= ${GOAL}: ${wireOverOverlay <= GOAL ? 'ok' : 'ABOVE'}), wire qcow2/raw ${out.headline.wire_qcow2_over_raw}, time qcow2/raw ${out.headline.time_qcow2_over_raw}`);
    });
  });
}

await main();
