/**
 * bench:cpu — where a migration's CPU goes, and whether both cores keep a fast
 * link full (issue 20, "both cores" and "content hash").
 *
 * 1. Content hash: SHA-256 (node:crypto) and BLAKE3 (hash-wasm) on 64 KiB
 *    blocks of the image, on one core in this process (`hash_gbps`: SHA-256,
 *    the default; `blake3_gbps` beside it).
 * 2. zstd: the image's blocks compressed at level 3 on the worker pool
 *    (default size: both cores), all queued at once (`zstd_gbps`, raw bytes in).
 * 3. Migrations: `flimcd target` and `flimcd source` as two processes on an
 *    unshaped loopback link (the CPU is the limit), an image of mostly
 *    compressible data (80 % text-like, 10 % random, 5 % repeated, 5 % holes).
 *    Two configurations: `before` (--workers 0 --content-hash blake3: ids and
 *    zstd on the event loop, as before the pool) and `after` (SHA-256 on the pool,
 *    `--workers` = the host's cores up to 2).
 *    Each report's `cpu` gives CPU seconds per GiB at source and target;
 *    `wire_gbps` is the rate the source put frames on the link. Compression
 *    keeps a 1 Gbit/s link full when that rate is at least 1 Gbit/s: the link,
 *    not the CPU, is then what the migration waits for.
 *
 * headline (of `after`, medians over --runs): cpu_s_per_gib_source,
 * cpu_s_per_gib_target (lower is better), hash_gbps, zstd_gbps (higher).
 * Run on a quiet machine; the load average is printed beside the numbers.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { generateImage } from '../src/workload/image-gen.ts';
import { blake3, sha256, isZero } from '../src/content/content-id.ts';
import { WorkerPool, defaultPoolSize } from '../src/workers/worker-pool.ts';
import type { MigrationReport } from '../src/migrate/report.ts';
import { median } from './stats.ts';
import { benchArgs } from './bench-args.ts';
import { builtFlimcd } from '../testing/built-cli.ts';

const args = benchArgs('cpu', 'usage: npm run -s bench:cpu [-- --json] [--size 1GiB] [--runs N]\n', {
  json: { type: 'boolean', default: false },
  size: { type: 'string' },
  runs: { type: 'string' },
});
const SIZE = args.size(args.values.size, 1 << 30, '--size');
const RUNS = args.int(args.values.runs, 1, '--runs');
const JSON_OUT = args.values.json ?? false;
const BS = 65536;
const BIN = builtFlimcd();
const say = (s: string) => { if (!JSON_OUT) console.log(s); };

/** Up to `limit` non-zero 64 KiB blocks of the image. */
function sampleBlocks(path: string, limit: number): Buffer[] {
  const fd = openSync(path, 'r');
  const out: Buffer[] = [];
  try {
    for (let off = 0; out.length < limit; off += BS) {
      const b = Buffer.allocUnsafe(BS);
      if (readSync(fd, b, 0, BS, off) < BS) break;
      if (!isZero(b)) out.push(b);
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function hashGbps(blocks: Buffer[], hash: (b: Uint8Array) => Buffer): number {
  for (const b of blocks.slice(0, 64)) hash(b); // warm-up
  const t = performance.now();
  for (const b of blocks) hash(b);
  return (blocks.length * BS) / ((performance.now() - t) / 1000) / 1e9;
}

async function zstdGbps(blocks: Buffer[]): Promise<number> {
  const pool = new WorkerPool({ size: defaultPoolSize() });
  try {
    await Promise.all(blocks.slice(0, 16).map((b) => pool.encode({ block: Buffer.from(b), hash: false, level: 3 }))); // workers up
    const copies = blocks.map((b) => Buffer.from(b));
    const t = performance.now();
    await Promise.all(copies.map((b) => pool.encode({ block: b, hash: false, level: 3 })));
    return (blocks.length * BS) / ((performance.now() - t) / 1000) / 1e9;
  } finally {
    await pool.close();
  }
}

interface Run { report: MigrationReport; wire_gbps: number; raw_gbps: number }

/** One migration between two agent processes; resolves with the source's report. */
async function migrateOnce(dir: string, image: string, flags: string[], n: number): Promise<Run> {
  const dst = join(dir, `dst-${n}.img`);
  const target = spawn(process.execPath, [BIN, 'target', '--image', dst, '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, `t${n}.sock`)}`, '--insecure', '--exit-when-done', '--json', ...flags], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLIMCD_LOG_LEVEL: 'error' } });
  let tErr = '';
  target.stderr.on('data', (d: Buffer) => (tErr += d.toString()));
  const listen = await new Promise<string>((resolve, reject) => {
    let out = '';
    target.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"listening"'));
      if (line) resolve((JSON.parse(line) as { listen: string }).listen);
    });
    target.on('close', () => reject(new Error(`target exited before listening: ${tErr}`)));
  });
  const source = spawn(process.execPath, [BIN, 'source', '--image', image, '--nbd', `unix:${join(dir, `s${n}.sock`)}`, '--to', listen, '--insecure', '--bandwidth', '1Gbit', '--json', '--state-dir', join(dir, `state-${n}`), ...flags], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLIMCD_LOG_LEVEL: 'error' } });
  let out = '';
  let err = '';
  source.stdout.on('data', (d: Buffer) => (out += d.toString()));
  source.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => source.on('close', r));
  await new Promise((r) => (target.exitCode !== null ? r(null) : target.on('close', r)));
  const line = out.split('\n').find((l) => l.includes('"event":"report"'));
  if (code !== 0 || !line) throw new Error(`source exited ${code}: ${err}\n${tErr}`);
  const report = JSON.parse(line) as MigrationReport;
  rmSync(dst, { force: true });
  return { report, wire_gbps: (report.wire_bytes * 8) / report.time_total_s / 1e9, raw_gbps: ((report.compression.raw_bytes + report.dedup.reference_blocks * BS) * 8) / report.time_total_s / 1e9 };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-cpu-'));
  try {
    const image = join(dir, 'src.img');
    await generateImage(image, SIZE, { seed: 20, mix: { zero: 0.05, duplicate: 0.05, text: 0.8 } });
    const blocks = sampleBlocks(image, 4096);
    const hash = { sha256: hashGbps(blocks, sha256), blake3: hashGbps(blocks, blake3) };
    say(`content hash on one core, 64 KiB blocks: SHA-256 ${hash.sha256.toFixed(2)} GB/s, BLAKE3 ${hash.blake3.toFixed(2)} GB/s`);
    const zstd = await zstdGbps(blocks);
    say(`zstd level 3 on ${defaultPoolSize()} workers: ${zstd.toFixed(2)} GB/s of raw blocks`);
    const configs = { before: ['--workers', '0', '--content-hash', 'blake3'], after: ['--workers', String(defaultPoolSize())] };
    const rows: Record<string, Run[]> = { before: [], after: [] };
    let n = 0;
    for (let r = 0; r < RUNS; r++) {
      for (const [name, flags] of Object.entries(configs)) {
        const run = await migrateOnce(dir, image, flags, n++);
        rows[name]!.push(run);
        say(`${name.padEnd(6)} run ${r + 1}: ${run.report.time_total_s.toFixed(1)} s, cpu ${run.report.cpu.source_s_per_gib} s/GiB source, ${run.report.cpu.target_s_per_gib} s/GiB target, wire ${run.wire_gbps.toFixed(2)} Gbit/s, raw ${run.raw_gbps.toFixed(2)} Gbit/s, zstd level ${run.report.compression.level} ratio ${(run.report.compression.raw_bytes / Math.max(1, run.report.compression.wire_bytes)).toFixed(2)}, workers busy ${run.report.cpu.source_workers_busy_s}/${run.report.cpu.target_workers_busy_s} s, verified ${run.report.verified}`);
      }
    }
    const summary = (name: string) => {
      const rs = rows[name]!;
      return {
        time_total_s: median(rs.map((r) => r.report.time_total_s)),
        cpu_s_per_gib_source: median(rs.map((r) => r.report.cpu.source_s_per_gib)),
        cpu_s_per_gib_target: median(rs.map((r) => r.report.cpu.target_s_per_gib ?? NaN)),
        wire_gbps: +median(rs.map((r) => r.wire_gbps)).toFixed(3),
        raw_gbps: +median(rs.map((r) => r.raw_gbps)).toFixed(3),
        link_1gbit_full: median(rs.map((r) => r.wire_gbps)) >= 1,
        verified: rs.every((r) => r.report.verified),
      };
    };
    const before = summary('before');
    const after = summary('after');
    const headline = { cpu_s_per_gib_source: after.cpu_s_per_gib_source, cpu_s_per_gib_target: after.cpu_s_per_gib_target, hash_gbps: +hash.sha256.toFixed(3), zstd_gbps: +zstd.toFixed(3) };
    const load = loadavg().map((l) => +l.toFixed(2));
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify({ bench: 'cpu', size: SIZE, runs: RUNS, workers: defaultPoolSize(), load_average: load, hash_gbps: hash, before, after, headline }) + '\n');
    } else {
      console.table({ before, after });
      console.log(`\nheadline: ${JSON.stringify(headline)}  (load average ${load.join(' ')})`);
      console.log(`a 1 Gbit/s link stays full with compression on ${defaultPoolSize()} workers: ${after.link_1gbit_full ? 'yes' : 'no'} (the source put ${after.wire_gbps} Gbit/s of frames on an unshaped link)`);
    }
    if (!before.verified || !after.verified) process.exitCode = 3;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
