/**
 * bench:perf — issue 20's goals in one run, one table, one headline.
 *
 *   npm run -s bench:perf [-- --json] [--quick] [--only goodput,downtime,guest,cpu,rss,nbd] [--runs N]
 *
 * Needs dist/ (`npm run build`): the agents run as processes from bin/flimcd.js, as in production.
 *
 * - goodput: real agents (`flimcd source`, `flimcd target`) with `flimcd wan` between them, three
 *   links (100 Mbit/s 40 ms, 1 Gbit/s 10 ms, 1 Gbit/s 100 ms), two paths: the emulator shaping,
 *   and a veth pair between two network namespaces shaped by tbf with the emulator adding only the
 *   delay (root only; skipped otherwise). An incompressible image of --seconds at the link's rate,
 *   the moderate workload (fio) at the source. bench/perf/goodput.ts says how each column is
 *   measured; framing overhead and TCP headers are reported on their own.
 *   headline.goodput: the worst link and path.
 * - downtime: a used disk's content with the moderate workload, as a data-sized image and inside a
 *   64 GiB sparse image, over 1 Gbit/s 10 ms; broken down into hold, hand-off, link, apply,
 *   durable and serve (bench/perf/downtime.ts). headline.downtime_ms_1g, downtime_ms_64g.
 * - guest: fio through the source's export while it pre-copies vs through `flimcd export` with no
 *   migration (bench/perf/guest-io.ts). headline.guest_io_ratio.
 * - cpu, rss, nbd: run `bench:cpu`, `bench:terabyte` and `bench:nbd` as they are (each its own
 *   process, --json) and take their headlines: cpu_s_per_gib_source/target, rss_mib_1t,
 *   nbd_seq_write, nbd_seq_read, nbd_rand4k.
 *
 * --quick: smaller images and shorter runs (a smoke run, minutes not an hour): goodput on the
 * emulator and veth at 100 Mbit/s 40 ms only, 256 MiB of content for downtime, terabyte at 64 GiB
 * with 512 MiB of content, bench:nbd --quick, bench:cpu at 256 MiB.
 * Medians over --runs. The machine's load average is printed beside every section: on a shared
 * machine the numbers say little at a high load.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './bench-args.ts';
import { median } from './stats.ts';
import { measureGoodput, type GoodputCase, type GoodputRow } from './perf/goodput.ts';
import { measureDowntime, type DowntimeRow } from './perf/downtime.ts';
import { measureGuestIo, type GuestIoResult } from './perf/guest-io.ts';
import { canCreateNetns } from './perf/netns.ts';
import { builtFlimcd } from '../testing/built-cli.ts';

const SECTIONS = ['goodput', 'downtime', 'guest', 'cpu', 'rss', 'nbd'] as const;
const args = benchArgs('perf', `usage: npm run -s bench:perf [-- --json] [--quick] [--only SECTIONS] [--runs N] [--seconds S]
  --quick     smaller images, fewer links (a smoke run)
  --only      comma-separated: ${SECTIONS.join(', ')} (default all)
  --runs      repetitions of each goodput and downtime case; medians reported (default 1)
  --seconds   goodput: seconds of data at the link's rate (default 15, quick 6)
  --json      one JSON object with every row and the headline`, {
  json: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  runs: { type: 'string' },
  seconds: { type: 'string' },
});
const o = args.values;
const quick = o.quick ?? false;
const only = args.list(o.only, SECTIONS, '--only');
const runs = args.int(o.runs, 1, '--runs');
const seconds = args.int(o.seconds, quick ? 6 : 15, '--seconds');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Checked now, not when a section first runs the agents: a dist/ older than src/ would measure old code, and a
// section that found it out after the others ran would take their results with it. Run from a checkout nobody
// edits meanwhile (the later sections check again).
try {
  builtFlimcd();
} catch (e) {
  args.fail((e as Error).message);
}

const say = (s: string) => { if (!o.json) process.stderr.write(`${s}\n`); };
const load = () => loadavg().map((l) => +l.toFixed(2));

/** Runs another benchmark with --json and returns its parsed object. */
function runBench(script: string, extra: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), '--json', ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (err.length < 100_000) err += d; });
    child.on('close', (code) => {
      const line = out.split('\n').filter((l) => l.startsWith('{')).at(-1);
      if (!line) return reject(new Error(`bench/${script} exited ${String(code)} without JSON: ${err.slice(-2000)}`));
      resolve(JSON.parse(line) as Record<string, unknown>);
    });
  });
}

const LINKS: Array<Omit<GoodputCase, 'path'>> = quick
  ? [{ bandwidthBps: 100e6, rttMs: 40 }]
  : [{ bandwidthBps: 100e6, rttMs: 40 }, { bandwidthBps: 1e9, rttMs: 10 }, { bandwidthBps: 1e9, rttMs: 100 }];

interface Result {
  /** Sections that failed, with why: the others' results are kept. */
  errors?: Record<string, string>;
  goodput?: Array<GoodputRow & { load: number[] }>;
  downtime?: Array<DowntimeRow & { load: number[] }>;
  guest?: GuestIoResult & { load: number[] };
  cpu?: Record<string, unknown>;
  rss?: Record<string, unknown>;
  nbd?: Record<string, unknown>;
}

async function main(): Promise<void> {
  const res: Result = {};
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-perf-'));
  const fresh = () => mkdtempSync(join(dir, 'run-'));
  const section = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      (res.errors ??= {})[name] = (e as Error).message;
      say(`${name}: failed: ${(e as Error).message}`);
    }
  };
  try {
    if (only.includes('goodput')) await section('goodput', async () => {
      res.goodput = [];
      const paths: Array<GoodputCase['path']> = canCreateNetns() ? ['emulator', 'veth'] : ['emulator'];
      if (!paths.includes('veth')) say('goodput: not root, the veth/tbf path is skipped');
      for (const l of LINKS) for (const path of paths) for (let r = 0; r < runs; r++) {
        const row = await measureGoodput(fresh(), { ...l, path }, seconds);
        res.goodput.push({ ...row, load: load() });
        say(`goodput ${path} ${row.link}: ${row.goodput} (link ${row.link_util}, framing ${row.framing}, tcp ${row.tcp_headers}) load ${load().join(' ')}`);
      }
    });
    if (only.includes('downtime')) await section('downtime', async () => {
      res.downtime = [];
      const data = quick ? 256 << 20 : 1 << 30;
      for (const imageBytes of [data, 64 * 2 ** 30]) for (let r = 0; r < runs; r++) {
        const row = await measureDowntime(fresh(), { dataBytes: data, imageBytes, bandwidthBps: 1e9, rttMs: 10 });
        res.downtime.push({ ...row, load: load() });
        say(`downtime ${row.image}: ${row.downtime_ms} ms (handoff ${row.handoff_ms}, link ${row.link_ms}, apply ${row.apply_ms}, durable ${row.durable_ms}, serve ${row.serve_ms}; one clock: served ${row.served_after_ms} ms after the hold, CUTOVER's trip ${row.cutover_trip_ms}; before it: drain ${row.drain_ms} ms leaving ${row.in_flight_kib} KiB, hold ${row.hold_ms}) load ${load().join(' ')}`);
      }
    });
    if (only.includes('guest')) await section('guest', async () => {
      res.guest = { ...(await measureGuestIo(fresh(), { seconds: quick ? 5 : 15, bandwidthBps: 100e6, rttMs: 40 })), load: load() };
      say(`guest I/O: ${res.guest.iops_migrating} IOPS migrating / ${res.guest.iops_alone} alone = ${res.guest.guest_io_ratio} load ${load().join(' ')}`);
    });
    if (only.includes('cpu')) await section('cpu', async () => {
      res.cpu = await runBench('cpu.ts', quick ? ['--size', '256MiB'] : []);
      say(`bench:cpu ${JSON.stringify(res.cpu.headline)} load ${JSON.stringify(res.cpu.load_average)}`);
    });
    if (only.includes('rss')) await section('rss', async () => {
      res.rss = await runBench('terabyte.ts', quick ? ['--size', '64GiB', '--data', '512MiB'] : []);
      say(`bench:terabyte ${JSON.stringify(res.rss.headline)} load ${load().join(' ')}`);
    });
    if (only.includes('nbd')) await section('nbd', async () => {
      res.nbd = await runBench('nbd.ts', quick ? ['--quick'] : []);
      say(`bench:nbd ${JSON.stringify(res.nbd.headline)} load ${load().join(' ')}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const h = (b: Record<string, unknown> | undefined, k: string) => (b?.headline as Record<string, number> | undefined)?.[k] ?? null;
  const downtimeOf = (big: boolean) => {
    const rows = (res.downtime ?? []).filter((r) => (r.image_bytes > r.data_bytes) === big);
    return rows.length ? median(rows.map((r) => r.downtime_ms)) : null;
  };
  const worstGoodput = () => {
    const rows = res.goodput ?? [];
    if (!rows.length) return null;
    const cells = new Map<string, number[]>();
    for (const r of rows) cells.set(`${r.path} ${r.link}`, [...(cells.get(`${r.path} ${r.link}`) ?? []), r.goodput]);
    return Math.min(...[...cells.values()].map(median));
  };
  const headline = {
    goodput: worstGoodput(),
    downtime_ms_1g: downtimeOf(false),
    downtime_ms_64g: downtimeOf(true),
    cpu_s_per_gib_source: h(res.cpu, 'cpu_s_per_gib_source'),
    cpu_s_per_gib_target: h(res.cpu, 'cpu_s_per_gib_target'),
    rss_mib_1t: h(res.rss, 'rss_mib_1t'),
    guest_io_ratio: res.guest?.guest_io_ratio ?? null,
    nbd_seq_write: h(res.nbd, 'seq_write'),
    nbd_seq_read: h(res.nbd, 'seq_read'),
    nbd_rand4k: h(res.nbd, 'rand4k_read'),
  };
  // A failed section fails the run (exit 1), after the others' results are out.
  if (res.errors) process.exitCode = 1;
  if (o.json) {
    process.stdout.write(JSON.stringify({ bench: 'perf', quick, runs, load_average: load(), ...res, headline }) + '\n');
    return;
  }
  if (res.goodput?.length) {
    console.log('\ngoodput (block bytes during the bulk transfer / shaped rate; goal >= 0.95)');
    console.table(res.goodput.map((r) => ({ path: r.path, link: r.link, goodput: r.goodput, link_util: r.link_util, framing: r.framing, other: r.other_traffic, tcp_headers: r.tcp_headers, ack_rtt_ms: r.window_rtt_ms, verified: r.verified, load: r.load.join(' ') })));
  }
  if (res.downtime?.length) {
    console.log('\ndowntime, ms (goal <= 50, flat in image size); 1 Gbit/s 10 ms, moderate workload');
    console.table(res.downtime.map((r) => ({ image: r.image, downtime: r.downtime_ms, handoff: r.handoff_ms, link: r.link_ms, apply: r.apply_ms, durable: r.durable_ms, serve: r.serve_ms, served_after: r.served_after_ms, cutover_trip: r.cutover_trip_ms, drain: r.drain_ms, in_flight_kib: r.in_flight_kib, hold: r.hold_ms, verified: r.verified, load: r.load.join(' ') })));
  }
  console.log('\nheadline');
  console.table(Object.fromEntries(Object.entries(headline).map(([k, v]) => [k, { value: v }])));
  console.log(`load average ${load().join(' ')}`);
  for (const [name, why] of Object.entries(res.errors ?? {})) console.log(`${name}: FAILED: ${why}`);
}

await main();
