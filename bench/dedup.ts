/**
 * Dedup benchmark: wire bytes and time of `flimcd` against `precopy` (no
 * dedup, no compression) for three targets, through the WAN emulator.
 *
 *   npm run -s bench:dedup [-- --json] [--runs N] [--quick] [--bandwidth 100Mbit] [--rtt 20ms]
 *
 * Images (realistic, sharing a base):
 * - base.img: an ext4 file system made by `mke2fs -d` from this machine's
 *   Debian file tree (/usr/lib/python3.11 and /usr/share/perl: real program,
 *   library and text files).
 * - vm.img: base.img plus per-VM changes written into the file system with
 *   debugfs (no mount needed): new log files (text), new binary blobs
 *   (random), and some files removed.
 * - vm-b.img: vm.img after it ran at the target: more files written there.
 *
 * Cases (the VM is idle during each migration, so every byte on the wire is
 * attributable to what the target lacks, not to the guest's dirtying):
 * - fresh: vm.img to an empty target, no index.
 * - base:  vm.img to a target whose replica index holds base.img.
 * - back:  vm-b.img back to the first site, whose old copy (vm.img) is the
 *          target image (migrate-back onto the older copy).
 *
 * Lower bound per case: the unique (by content id), non-zero blocks of the
 * source image that the target cannot produce locally, each zstd-compressed
 * at level 9 on its own (what flimcd's level policy picks at 100 Mbit/s on
 * these machines), raw when that is smaller. headline.X = flimcd wire bytes
 * (payload and framing, both directions) / lower bound. Goal <= 1.03.
 * Time and wire bytes of precopy are shown beside it for the same case.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, openSync, readSync, closeSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { startAgentPair } from '../src/demo/agent-pair.ts';
import { ReplicaIndex } from '../src/replica-index/replica-index.ts';
import { indexImage } from '../src/replica-index/image-scan.ts';
import { contentId, isZero } from '../src/content/content-id.ts';
import type { Algorithm } from '../src/policy/algorithm.ts';
import type { MigrationReport } from '../src/migrate/report.ts';
import { formatBytes } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';
import { Prng } from '../src/workload/prng.ts';
import { median } from './stats.ts';
import { ratioOfMedians } from './headline.ts';

const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;
const BS = 65536;
const BOUND_LEVEL = 9;
const GOAL = 1.03;

const parsed = benchArgs('dedup', 'usage: npm run -s bench:dedup [-- --json] [--quick] [--runs N] [--bandwidth 100Mbit] [--rtt 20ms] [--keep]\n', {
  json: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  runs: { type: 'string' },
  bandwidth: { type: 'string', default: '100Mbit' },
  rtt: { type: 'string', default: '20ms' },
  keep: { type: 'boolean', default: false },
});
const args = parsed.values;
const runs = parsed.int(args.runs, args.quick ? 1 : 3, '--runs');
const bandwidthBps = parsed.rate(args.bandwidth, 100e6, '--bandwidth');
const rttMs = parsed.duration(args.rtt, 20, '--rtt');
const say = (s: string) => process.stderr.write(s + '\n');
const quiet = log.child({ bench: 'dedup' });
quiet.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';

function sh(cmd: string, argv: string[], input?: string): void {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', input, env: { ...process.env, PATH: `/usr/sbin:/sbin:/usr/bin:${process.env.PATH}` } });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
}

/** Files for per-VM changes: text logs and random blobs, deterministic. */
function makeFiles(dir: string, seed: number, count: number, size: number): string[] {
  mkdirSync(dir, { recursive: true });
  const rng = new Prng(seed);
  const out: string[] = [];
  const words = 'kernel: eth0 link up systemd started session user root cron job finished nginx GET /index.html 200 error warning'.split(' ');
  for (let i = 0; i < count; i++) {
    const p = join(dir, `f${seed}-${i}`);
    const b = Buffer.allocUnsafe(size);
    if (i % 2) rng.fill(b);
    else {
      let o = 0;
      while (o < size) o += b.write(`${(1700000000 + rng.int(1e6)).toString()} ${words[rng.int(words.length)]} ${words[rng.int(words.length)]} ${rng.int(65536)}\n`, o, 'latin1');
    }
    writeFileSync(p, b);
    out.push(p);
  }
  return out;
}

/** Writes files into an ext4 image and removes some, with debugfs (no mount). */
function changeImage(img: string, dir: string, files: string[], remove: string[]): void {
  const cmds = [`mkdir ${dir}`, ...files.map((f, i) => `write ${f} ${dir}/file${i}`), ...remove.map((r) => `rm ${r}`)];
  sh('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
}

function listFiles(img: string, dir: string): string[] {
  const r = spawnSync('debugfs', ['-R', `ls -p ${dir}`, img], { encoding: 'utf8', env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH}` } });
  return r.stdout.split('\n').map((l) => l.split('/')).filter((p) => p.length > 5 && p[2]?.startsWith('100')).map((p) => `${dir}/${p[5]}`);
}

/** Content ids of every non-zero block of an image. */
function blockIds(path: string): Map<string, Buffer> {
  const fd = openSync(path, 'r');
  const size = statSync(path).size;
  const buf = Buffer.allocUnsafe(BS);
  const out = new Map<string, Buffer>();
  try {
    for (let off = 0; off < size; off += BS) {
      const n = readSync(fd, buf, 0, Math.min(BS, size - off), off);
      const b = buf.subarray(0, n);
      if (isZero(b)) continue;
      const k = contentId(b).toString('base64');
      if (!out.has(k)) out.set(k, Buffer.from(b));
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Unique non-zero blocks of `src` absent from every image in `have`, compressed one by one. */
function lowerBound(src: string, have: string[]): { blocks: number; bytes: number } {
  const haveIds = new Set<string>();
  for (const h of have) for (const k of blockIds(h).keys()) haveIds.add(k);
  const cctx = new zstd.CCtx();
  const dst = Buffer.allocUnsafe(zstd.compressBound(BS));
  let blocks = 0;
  let bytes = 0;
  for (const [k, b] of blockIds(src)) {
    if (haveIds.has(k)) continue;
    blocks++;
    bytes += Math.min(b.length, cctx.compress(dst, b, BOUND_LEVEL));
  }
  return { blocks, bytes };
}

interface RunResult {
  report: MigrationReport;
  wallS: number;
}

async function migrate(dir: string, src: string, dst: string, algorithm: Algorithm, indexDir?: string): Promise<RunResult> {
  const t0 = performance.now();
  const pair = await startAgentPair({ sourceImage: src, targetImage: dst, dir, algorithm, blockSize: BS, bandwidthBps, rttMs, log: quiet, target: { indexDir } });
  const { source, target } = pair;
  try {
    const report = await source.migrate();
    await target.result();
    if (!report.verified) throw new Error(`${algorithm} ${src} → ${dst}: not verified`);
    return { report, wallS: (performance.now() - t0) / 1000 };
  } finally {
    await pair.close();
  }
}


async function main(): Promise<void> {
  for (const tool of ['mke2fs', 'debugfs']) {
    if (spawnSync('sh', ['-c', `PATH=/usr/sbin:/sbin:$PATH command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing (apt-get install e2fsprogs)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-dedup-'));
  try {
    const size = args.quick ? '160M' : '256M';
    const trees = args.quick ? ['/usr/lib/python3.11'] : ['/usr/lib/python3.11', '/usr/share/perl'];
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    for (const t of trees) if (existsSync(t)) sh('cp', ['-a', t, tree]);
    const base = join(dir, 'base.img');
    say(`building images in ${dir} (ext4 from ${trees.join(' + ')}) …`);
    sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', 'root_owner=0:0', '-d', tree, base, size]);
    const vm = join(dir, 'vm.img');
    copyFileSync(base, vm);
    const pyFiles = listFiles(vm, `/${trees[0]!.split('/').pop()}`).slice(0, 20);
    changeImage(vm, '/var-vm', makeFiles(join(dir, 'f1'), 1, args.quick ? 12 : 24, 512 * 1024), pyFiles);
    const vmB = join(dir, 'vm-b.img');
    copyFileSync(vm, vmB);
    changeImage(vmB, '/var-b', makeFiles(join(dir, 'f2'), 2, args.quick ? 6 : 12, 512 * 1024), []);
    const imgBytes = statSync(vm).size;

    const bounds = {
      fresh: lowerBound(vm, []),
      base: lowerBound(vm, [base]),
      back: lowerBound(vmB, [vm]),
    };
    say(`lower bounds: fresh ${formatBytes(bounds.fresh.bytes)} (${bounds.fresh.blocks} blocks), base ${formatBytes(bounds.base.bytes)} (${bounds.base.blocks}), back ${formatBytes(bounds.back.bytes)} (${bounds.back.blocks})`);

    const indexDir = join(dir, 'index');
    const ix = ReplicaIndex.open(indexDir);
    await indexImage(ix, base, BS);
    await ix.close();

    type Case = keyof typeof bounds;
    const cases: Array<{ name: Case; src: string; prepare: (dst: string) => void; index?: string }> = [
      { name: 'fresh', src: vm, prepare: () => {} },
      { name: 'base', src: vm, prepare: () => {}, index: indexDir },
      { name: 'back', src: vmB, prepare: (dst) => copyFileSync(vm, dst) },
    ];
    const samples: Record<string, { wire: number[]; time: number[]; report?: MigrationReport }> = {};
    for (let r = 0; r < runs; r++) {
      for (const c of cases) {
        for (const algorithm of ['flimcd', 'precopy'] as const) {
          const dst = join(dir, `dst-${c.name}-${algorithm}.img`);
          rmSync(dst, { force: true });
          c.prepare(dst);
          // Precopy has no dedup: it gets no index (it would not use one).
          const res = await migrate(dir, c.src, dst, algorithm, algorithm === 'flimcd' ? c.index : undefined);
          const want = readFileSync(c.src);
          if (!readFileSync(dst).equals(want)) throw new Error(`${c.name}/${algorithm}: target differs from source`);
          const k = `${c.name}/${algorithm}`;
          samples[k] ??= { wire: [], time: [] };
          samples[k].wire.push(res.report.wire_bytes);
          samples[k].time.push(res.report.time_total_s);
          samples[k].report = res.report;
          say(`run ${r + 1}/${runs} ${k}: ${formatBytes(res.report.wire_bytes)} on the wire, ${res.report.time_total_s.toFixed(2)} s`);
          rmSync(dst, { force: true });
        }
      }
    }
    const rows = cases.map((c) => {
      const f = samples[`${c.name}/flimcd`]!;
      const p = samples[`${c.name}/precopy`]!;
      const bound = bounds[c.name];
      const fr = f.report!;
      return {
        case: c.name,
        lower_bound_bytes: bound.bytes,
        lower_bound_blocks: bound.blocks,
        flimcd: {
          wire_bytes: median(f.wire), time_s: median(f.time),
          data_bytes: fr.wire_bytes_breakdown.data, reference_bytes: fr.wire_bytes_breakdown.reference, control_bytes: fr.wire_bytes_breakdown.control, zero_bytes: fr.wire_bytes_breakdown.zero,
          blocks: fr.blocks, compression_level: fr.compression.level,
        },
        precopy: { wire_bytes: median(p.wire), time_s: median(p.time) },
        wire_over_bound: median(f.wire) / bound.bytes,
        wire_flimcd_over_precopy: ratioOfMedians(f.wire, p.wire),
        time_flimcd_over_precopy: ratioOfMedians(f.time, p.time),
      };
    });
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const headline = Object.fromEntries(rows.map((r) => [r.case, r3(r.wire_over_bound)])) as Record<Case, number>;
    const out = {
      bench: 'dedup',
      image_bytes: imgBytes,
      block_size: BS,
      link: { bandwidth_bps: bandwidthBps, rtt_ms: rttMs },
      runs,
      bound_compression_level: BOUND_LEVEL,
      goal: GOAL,
      headline,
      cases: rows,
    };
    if (args.json) {
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      const line = (cells: string[]) => '| ' + cells.join(' | ') + ' |';
      console.log(`\nbench:dedup — ${formatBytes(imgBytes)} ext4 image, ${args.bandwidth} / ${args.rtt}, median of ${runs} run(s)\n`);
      console.log(line(['case', 'lower bound', 'flimcd wire', 'wire / bound', 'precopy wire', 'flimcd time', 'precopy time', 'time ratio', 'goal']));
      console.log(line(Array<string>(9).fill('---')));
      for (const r of rows) {
        console.log(line([
          r.case, formatBytes(r.lower_bound_bytes), formatBytes(r.flimcd.wire_bytes), r.wire_over_bound.toFixed(3), formatBytes(r.precopy.wire_bytes),
          `${r.flimcd.time_s.toFixed(2)} s`, `${r.precopy.time_s.toFixed(2)} s`, r.time_flimcd_over_precopy.toFixed(3), r.wire_over_bound <= GOAL ? 'ok' : 'ABOVE',
        ]));
      }
      console.log(`\nheadline (wire bytes / lower bound): fresh ${headline.fresh}, base ${headline.base}, back ${headline.back}`);
    }
  } finally {
    if (args.keep) say(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
