/**
 * The driver of the benchmarks that migrate images they build (bench:dedup,
 * bench:qcow2): their shared options, a temp dir, tools checked up front,
 * and cases, each migrated by an idle agent pair through the WAN emulator
 * (src/demo/agent-pair.ts) N times, checked after every run; the benchmark
 * takes medians of the reports.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { benchArgs, type BenchArgs } from './bench-args.ts';
import { startAgentPair, type AgentPairOptions } from '../src/demo/agent-pair.ts';
import type { Algorithm } from '../src/policy/algorithm.ts';
import type { MigrationReport } from '../src/migrate/report.ts';
import { formatBytes } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';
import { Prng } from '../src/workload/prng.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The agents' block size in these benchmarks. */
export const PAIR_BENCH_BLOCK = 65536;

/** The file-system tools (mke2fs, debugfs in /sbin), wherever this process's PATH puts them. */
export const TOOL_PATH = `/usr/bin:/usr/sbin:/sbin:/bin:${process.env.PATH ?? ''}`;

/** Runs a tool to completion; its stdout, or an error with its output when it fails. */
export function sh(cmd: string, argv: string[], input?: string): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PATH: TOOL_PATH } });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  return r.stdout;
}

/**
 * New files for a VM, deterministic: text logs, and random blobs where
 * `random(i)`. Returns their paths.
 */
export function vmFiles(dir: string, o: { seed: number; count: number; size: number; name: (i: number) => string; random: (i: number) => boolean }): string[] {
  mkdirSync(dir, { recursive: true });
  const rng = new Prng(o.seed);
  const words = 'kernel: eth0 link up systemd started session user root cron job finished nginx GET /index.html 200 error warning'.split(' ');
  const out: string[] = [];
  for (let i = 0; i < o.count; i++) {
    const b = Buffer.allocUnsafe(o.size);
    if (o.random(i)) rng.fill(b);
    else {
      let off = 0;
      while (off < o.size) off += b.write(`${(1700000000 + rng.int(1e6)).toString()} ${words[rng.int(words.length)]} ${words[rng.int(words.length)]} ${rng.int(65536)}\n`, off, 'latin1');
    }
    const p = join(dir, o.name(i));
    writeFileSync(p, b);
    out.push(p);
  }
  return out;
}

/** A markdown table row. */
export const tableRow = (cells: string[]) => '| ' + cells.join(' | ') + ' |';

/** One image migrated in each run: a fresh target each time, checked after. */
export interface PairCase<K extends string> {
  name: K;
  source: string;
  target: string;
  algorithm: Algorithm;
  /** Further options of either agent (image format, backing file, replica index). */
  agents?: Pick<AgentPairOptions, 'source' | 'target'>;
  /** Before each run, once the last target is removed: e.g. put an older copy there. */
  prepare?: (target: string) => void;
  /** After each run: throws when the target differs from its source; may remove it. */
  check: (target: string) => void;
}

export interface PairBench<V> {
  parsed: BenchArgs<Options>;
  values: V & { json: boolean; quick: boolean; bandwidth: string; rtt: string; keep: boolean };
  runs: number;
  bandwidthBps: number;
  rttMs: number;
  /** A progress line on stderr. */
  say: (s: string) => void;
  /** Ends with exit 2 naming the first tool missing, and the packages to install. */
  requireTools(tools: string[], packages: string): void;
  /** Runs `body` in a fresh temp dir, removed after unless --keep. */
  inTempDir<T>(prefix: string, body: (dir: string) => Promise<T>): Promise<T>;
  /**
   * Migrates every case `runs` times in `dir`; with `alternate`, every other
   * run takes the cases in reverse order, so drift on a shared machine falls
   * on all of them. Each case's reports, in run order.
   */
  runCases<K extends string>(dir: string, cases: Array<PairCase<K>>, o?: { alternate?: boolean; detail?: (r: MigrationReport) => string }): Promise<Record<K, MigrationReport[]>>;
  /** With --json the JSON line on stdout, else the readable table. */
  print(out: object, table: () => void): void;
}

/**
 * Parses the shared options (`--json --quick --runs N --bandwidth --rtt
 * --keep`) and `extra` (string options), and returns the driver. `runs` defaults to
 * `defaults.runs`, or `defaults.quickRuns` with --quick.
 */
export function pairBench<O extends Record<string, { type: 'string' }>>(name: string, usage: string, defaults: { rtt: string; runs: number; quickRuns?: number }, extra: O): PairBench<Partial<Record<keyof O, string>>> {
  const parsed = benchArgs(name, usage, {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    bandwidth: { type: 'string', default: '100Mbit' },
    rtt: { type: 'string', default: defaults.rtt },
    keep: { type: 'boolean', default: false },
    ...extra,
  }) as unknown as BenchArgs<Options>;
  type Values = PairBench<Partial<Record<keyof O, string>>>['values'];
  const values = parsed.values as unknown as Values & { runs?: string };
  const runs = parsed.int(values.runs, values.quick ? (defaults.quickRuns ?? defaults.runs) : defaults.runs, '--runs');
  const bandwidthBps = parsed.rate(values.bandwidth, 100e6, '--bandwidth');
  const rttMs = parsed.duration(values.rtt, 0, '--rtt');
  const say = (s: string) => process.stderr.write(s + '\n');
  const quiet = log.child({ bench: name });
  quiet.level = process.env.FLIMCD_LOG_LEVEL ?? 'warn';

  const migrate = async (dir: string, c: PairCase<string>): Promise<MigrationReport> => {
    const pair = await startAgentPair({ sourceImage: c.source, targetImage: c.target, dir, algorithm: c.algorithm, blockSize: PAIR_BENCH_BLOCK, bandwidthBps, rttMs, log: quiet, ...c.agents });
    try {
      const report = await pair.source.migrate();
      await pair.target.result();
      if (!report.verified) throw new Error(`${c.algorithm} ${c.source} → ${c.target}: not verified`);
      return report;
    } finally {
      await pair.close();
    }
  };

  return {
    parsed,
    values,
    runs,
    bandwidthBps,
    rttMs,
    say,
    requireTools(tools, packages) {
      for (const tool of tools) {
        if (spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: TOOL_PATH } }).status !== 0) parsed.fail(`${tool} is missing (apt-get install ${packages})`);
      }
    },
    async inTempDir(prefix, body) {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      try {
        return await body(dir);
      } finally {
        if (values.keep) say(`kept ${dir}`);
        else rmSync(dir, { recursive: true, force: true });
      }
    },
    async runCases(dir, cases, o = {}) {
      const reports = Object.fromEntries(cases.map((c) => [c.name, [] as MigrationReport[]])) as Record<(typeof cases)[number]['name'], MigrationReport[]>;
      for (let r = 0; r < runs; r++) {
        for (const c of o.alternate && r % 2 ? [...cases].reverse() : cases) {
          rmSync(c.target, { force: true });
          c.prepare?.(c.target);
          const report = await migrate(dir, c);
          c.check(c.target);
          reports[c.name].push(report);
          say(`run ${r + 1}/${runs} ${c.name}: ${formatBytes(report.wire_bytes)} on the wire, ${report.time_total_s.toFixed(2)} s${o.detail ? `, ${o.detail(report)}` : ''}`);
        }
      }
      return reports;
    },
    print(out, table) {
      if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
      else table();
    },
  };
}
