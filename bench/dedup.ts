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
import { copyFileSync, rmSync, mkdirSync, readFileSync, openSync, readSync, closeSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { pairBench, sh, tableRow, vmFiles, TOOL_PATH, PAIR_BENCH_BLOCK as BS, type PairCase } from './pair-bench.ts';
import { ReplicaIndex } from '../src/replica-index/replica-index.ts';
import { indexImage } from '../src/replica-index/image-scan.ts';
import { contentId, isZero } from '../src/content/content-id.ts';
import { formatBytes } from '../src/util/units.ts';
import { median } from './stats.ts';
import { ratioOfMedians } from './headline.ts';

const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;
const BOUND_LEVEL = 9;
const GOAL = 1.03;

const bench = pairBench('dedup', 'usage: npm run -s bench:dedup [-- --json] [--quick] [--runs N] [--bandwidth 100Mbit] [--rtt 20ms] [--keep]\n', { rtt: '20ms', runs: 3, quickRuns: 1 }, {});
const args = bench.values;
const { runs, bandwidthBps, rttMs, say } = bench;

/** Files for per-VM changes: text logs and random blobs (every other one), deterministic. */
function makeFiles(dir: string, seed: number, count: number, size: number): string[] {
  return vmFiles(dir, { seed, count, size, name: (i) => `f${seed}-${i}`, random: (i) => i % 2 === 1 });
}

/** Writes files into an ext4 image and removes some, with debugfs (no mount). */
function changeImage(img: string, dir: string, files: string[], remove: string[]): void {
  const cmds = [`mkdir ${dir}`, ...files.map((f, i) => `write ${f} ${dir}/file${i}`), ...remove.map((r) => `rm ${r}`)];
  sh('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
}

function listFiles(img: string, dir: string): string[] {
  const r = spawnSync('debugfs', ['-R', `ls -p ${dir}`, img], { encoding: 'utf8', env: { ...process.env, PATH: TOOL_PATH } });
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


async function main(): Promise<void> {
  bench.requireTools(['mke2fs', 'debugfs'], 'e2fsprogs');
  await bench.inTempDir('flimcd-bench-dedup-', async (dir) => {
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
    const cases: Array<{ name: Case; src: string; prepare?: (dst: string) => void; index?: string }> = [
      { name: 'fresh', src: vm },
      { name: 'base', src: vm, index: indexDir },
      { name: 'back', src: vmB, prepare: (dst) => copyFileSync(vm, dst) },
    ];
    const migrations = cases.flatMap((c) => (['flimcd', 'precopy'] as const).map((algorithm): PairCase<string> => ({
      name: `${c.name}/${algorithm}`,
      source: c.src,
      target: join(dir, `dst-${c.name}-${algorithm}.img`),
      algorithm,
      // Precopy has no dedup: it gets no index (it would not use one).
      agents: { target: { indexDir: algorithm === 'flimcd' ? c.index : undefined } },
      prepare: c.prepare,
      check: (dst) => {
        if (!readFileSync(dst).equals(readFileSync(c.src))) throw new Error(`${c.name}/${algorithm}: target differs from source`);
        rmSync(dst, { force: true });
      },
    })));
    const reports = await bench.runCases(dir, migrations);
    const samples = (k: string) => {
      const rs = reports[k]!;
      return { wire: rs.map((r) => r.wire_bytes), time: rs.map((r) => r.time_total_s), report: rs[rs.length - 1] };
    };
    const rows = cases.map((c) => {
      const f = samples(`${c.name}/flimcd`);
      const p = samples(`${c.name}/precopy`);
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
    bench.print(out, () => {
      console.log(`\nbench:dedup — ${formatBytes(imgBytes)} ext4 image, ${args.bandwidth} / ${args.rtt}, median of ${runs} run(s)\n`);
      console.log(tableRow(['case', 'lower bound', 'flimcd wire', 'wire / bound', 'precopy wire', 'flimcd time', 'precopy time', 'time ratio', 'goal']));
      console.log(tableRow(Array<string>(9).fill('---')));
      for (const r of rows) {
        console.log(tableRow([
          r.case, formatBytes(r.lower_bound_bytes), formatBytes(r.flimcd.wire_bytes), r.wire_over_bound.toFixed(3), formatBytes(r.precopy.wire_bytes),
          `${r.flimcd.time_s.toFixed(2)} s`, `${r.precopy.time_s.toFixed(2)} s`, r.time_flimcd_over_precopy.toFixed(3), r.wire_over_bound <= GOAL ? 'ok' : 'ABOVE',
        ]));
      }
      console.log(`\nheadline (wire bytes / lower bound): fresh ${headline.fresh}, base ${headline.base}, back ${headline.back}`);
    });
  });
}

await main();
