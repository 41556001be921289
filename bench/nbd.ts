/**
 * NBD server benchmark: our server (`flimcd export`, as its own process)
 * against qemu-nbd, exporting the same fully allocated raw file.
 *
 *   npm run -s bench:nbd [-- --json] [-- --runs N] [--size 1GiB] [--quick]
 *   npx tsx bench/nbd.ts --quick
 *
 * (`npm run` without -s prints its own "> flimcd@..." banner on stdout; use -s
 * or tsx directly when piping --json.)
 *
 * Method
 * - One temp dir holds the source image (random-looking, non-zero, fully
 *   allocated: an AES-CTR keystream) and one write target per server (copies
 *   of the image, so also fully allocated). All are removed at exit.
 * - Four servers run for the whole benchmark, all on Unix sockets (QEMU 7.2's
 *   NBD server does not set TCP_NODELAY, which would penalise it on TCP;
 *   docs/qemu.md):
 *     ours-read   node bin/flimcd.js export --image IMAGE  --listen unix:...
 *     ours-write  node bin/flimcd.js export --image TARGET1 --listen unix:...
 *     qemu-read   qemu-nbd -f raw -e 4 -t --cache=writeback --aio=threads -k ... IMAGE
 *     qemu-write  qemu-nbd (same) ... TARGET2
 *   --cache=writeback --aio=threads are qemu-nbd's defaults, spelled out: the
 *   host page cache is used and nothing is synced per request, which is what
 *   our FileDisk does (plain pread/pwrite through libuv's thread pool). Both
 *   read servers export the same file, so they share its page cache. Our
 *   server inherits this process's environment (e.g. UV_THREADPOOL_SIZE).
 * - Metrics (higher is better):
 *     seq_read    nbdcopy --request-size=1048576 --connections=C --threads=C URI null:   MB/s
 *     seq_write   nbdcopy --request-size=1048576 --connections=C --threads=C IMAGE URI   MB/s
 *                 (no --flush; the target is fdatasync'ed afterwards, untimed,
 *                 so dirty pages never spill into the next measurement)
 *     rand4k_read fio --ioengine=nbd --rw=randread --bs=4k --iodepth=16 (one
 *                 connection), time based with a 1 s ramp, IOPS
 *   Seq rates are bytes / wall time of the nbdcopy process (includes its
 *   connect and handshake, the same few ms for both), MB = 10^6 bytes.
 * - Each run measures every metric for both servers back to back, and the
 *   order alternates per run (ours first, then qemu-nbd first, ...), so drift
 *   on a noisy machine hits both. Results are medians over the runs. Before
 *   each measurement the bench waits until no server process is using CPU
 *   (leftover GC or buffer freeing would steal a core on a small machine).
 * - Alongside each sample it records the CPU time (user + system, all
 *   threads, from /proc) the measured server used: on a shared machine that
 *   efficiency figure is steadier than throughput.
 * - The untimed warm-up copies the image through every server once (page
 *   cache filled, JIT warm on both read and write paths).
 * - --profile DIR runs our servers under `node --cpu-prof` and leaves the
 *   .cpuprofile files in DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, readFileSync, copyFileSync, openSync, fdatasyncSync, closeSync, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './bench-args.ts';
import { formatBytes } from '../src/util/units.ts';
import { nbdUri } from '../src/util/address.ts';
import { median } from './stats.ts';
import { builtFlimcd } from '../testing/built-cli.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Distribution tools first: the peers live in /usr/bin, and pyenv shims must not shadow them. */
const PEER_PATH = `/usr/bin:/usr/sbin:/bin:${process.env.PATH ?? ''}`;

const METRICS = ['seq_read', 'seq_write', 'rand4k_read'] as const;
type Metric = (typeof METRICS)[number];
const UNITS: Record<Metric, string> = { seq_read: 'MB/s', seq_write: 'MB/s', rand4k_read: 'IOPS' };
const GOALS: Record<Metric, number> = { seq_read: 1.0, seq_write: 1.0, rand4k_read: 0.7 };
type Server = 'ours' | 'qemu_nbd';
const SERVERS: Server[] = ['ours', 'qemu_nbd'];
const LABEL: Record<Server, string> = { ours: 'flimcd', qemu_nbd: 'qemu-nbd' };

interface Options {
  json: boolean;
  runs: number;
  size: number;
  randSeconds: number;
  connections: number;
  metrics: Metric[];
  profileDir: string | undefined;
  quick: boolean;
}

const USAGE = `usage: tsx bench/nbd.ts [--json] [--runs N] [--size SIZE] [--quick]
                     [--rand-seconds S] [--connections C] [--only seq_read,seq_write,rand4k_read]
                     [--profile DIR]
  --quick        256 MiB, 3 runs, 3 s random reads (smoke run)
  --runs N       runs per server and metric; medians are reported (default 5)
  --size SIZE    image size (default 1GiB)
  --connections  nbdcopy connections/threads (default 4; both servers advertise multi-conn)
  --profile DIR  run our servers under node --cpu-prof, profiles into DIR
`;

function parseOptions(argv: string[]): Options {
  const a = benchArgs('nbd', USAGE, {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    size: { type: 'string' },
    'rand-seconds': { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'string' },
  }, argv);
  const v = a.values;
  const quick = v.quick ?? false;
  const size = a.size(v.size, quick ? 256 * 1024 ** 2 : 1024 ** 3, '--size');
  if (size < 16 * 1024 ** 2 || size % (1024 * 1024) !== 0) a.fail('--size must be a multiple of 1 MiB and at least 16 MiB');
  return {
    json: v.json ?? false,
    quick,
    runs: a.int(v.runs, quick ? 3 : 5, '--runs'),
    size,
    randSeconds: a.int(v['rand-seconds'], quick ? 3 : 5, '--rand-seconds'),
    connections: a.int(v.connections, 4, '--connections'),
    metrics: a.list(v.only, METRICS, '--only'),
    profileDir: v.profile ? resolve(v.profile) : undefined,
  };
}

// ---------------------------------------------------------------------------
// processes

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<Result> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, PATH: PEER_PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolveRun({ code, signal, stdout, stderr }); });
  });
}

async function runOk(cmd: string, args: string[], timeoutMs?: number): Promise<Result> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.code ?? r.signal})\n${r.stdout}${r.stderr}`);
  }
  return r;
}

function hasTool(name: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${name}`]).then((r) => r.code === 0, () => false);
}

interface Running { name: string; child: ChildProcess; uri: string; stderr: () => string }

const children: Running[] = [];
let interrupted = false;

/** Our server as a real deployment runs it: its own node process, through bin/flimcd.js. */
async function startOurs(name: string, image: string, sock: string, profileDir: string | undefined): Promise<Running> {
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...nodeArgs, builtFlimcd(), 'export', '--image', image, '--listen', `unix:${sock}`, '--json'], {
    cwd: ROOT,
    env: { ...process.env, FLIMCD_LOG_LEVEL: process.env.FLIMCD_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-8192)));
  const r: Running = { name, child, uri: nbdUri({ kind: 'unix', path: sock }), stderr: () => err };
  children.push(r);
  await new Promise<void>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${name}: no "listening" event within 30 s\n${err}`)), 30_000);
    const onData = (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        if (!line.trim().startsWith('{')) continue;
        try {
          const ev = JSON.parse(line) as { event?: string; uri?: string };
          if (ev.event === 'listening') {
            clearTimeout(timer);
            child.stdout.off('data', onData);
            child.stdout.resume();
            if (ev.uri) r.uri = ev.uri;
            ok();
            return;
          }
        } catch { /* partial line */ }
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`${name} exited (${code}) before listening\n${err}`)); });
  });
  return r;
}

async function startQemu(name: string, image: string, sock: string): Promise<Running> {
  // -e 4: up to 4 clients (nbdcopy multi-conn); -t: survive the last client
  // disconnecting. writeback/threads are qemu-nbd's defaults, written out.
  const child = spawn('qemu-nbd', ['-f', 'raw', '-e', '4', '-t', '--cache=writeback', '--aio=threads', '-k', sock, image], {
    env: { ...process.env, PATH: PEER_PATH },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-8192)));
  const r: Running = { name, child, uri: nbdUri({ kind: 'unix', path: sock }), stderr: () => err };
  children.push(r);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`${name}: qemu-nbd exited before listening\n${err}`);
    if (existsSync(sock) && (await canConnect(sock))) return r;
    if (Date.now() > deadline) throw new Error(`${name}: qemu-nbd not listening after 30 s\n${err}`);
    await sleep(50);
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((ok) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); ok(true); });
    s.once('error', () => ok(false));
  });
}

/**
 * Waits (up to 3 s) until no server burns CPU: a server still collecting
 * garbage or freeing buffers after the last measurement would otherwise steal
 * a core from the next one on a small machine.
 */
async function quiesce(servers: Running[], clkTck: number): Promise<void> {
  const total = () => servers.reduce((sum, r) => sum + cpuSeconds(r.child.pid!, clkTck), 0);
  const deadline = Date.now() + 3000;
  let last = total();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = total();
    if (now - last <= 0.01) return;
    last = now;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function stopAll(): Promise<void> {
  await Promise.all(children.splice(0).map((r) => stop(r)));
}

function stop(r: Running): Promise<void> {
  const c = r.child;
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    const kill = setTimeout(() => c.kill('SIGKILL'), 15_000);
    c.once('exit', () => { clearTimeout(kill); ok(); });
    c.kill('SIGTERM');
  });
}

function checkAlive(servers: Running[]): void {
  for (const r of servers) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) {
      throw new Error(`${r.name} died (${r.child.exitCode ?? r.child.signalCode})\n${r.stderr()}`);
    }
  }
}

// ---------------------------------------------------------------------------
// data

/** Writes `size` bytes of AES-CTR keystream: incompressible, never zero blocks, ~GB/s. */
async function makeImage(path: string, size: number): Promise<void> {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
  const zero = Buffer.alloc(4 * 1024 * 1024);
  const out = createWriteStream(path);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, zero.length);
    const chunk = cipher.update(zero.subarray(0, n));
    left -= n;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((ok, fail) => out.end((e?: Error | null) => (e ? fail(e) : ok())));
  syncFile(path);
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try { fdatasyncSync(fd); } finally { closeSync(fd); }
}

// ---------------------------------------------------------------------------
// measurements

interface Sample {
  value: number;
  /** CPU time (user + system, all threads) the server process used during the sample. */
  cpu?: number;
  extra?: Record<string, number>;
}

/** utime + stime of a process, all threads, from /proc (Linux). */
function cpuSeconds(pid: number, clkTck: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clkTck; // fields 14 and 15 of proc(5), counted from 3
}

async function seqRead(uri: string, o: Options): Promise<Sample> {
  const t0 = process.hrtime.bigint();
  await runOk('nbdcopy', [`--request-size=1048576`, `--connections=${o.connections}`, `--threads=${o.connections}`, uri, 'null:']);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { value: o.size / s / 1e6, extra: { seconds: s } };
}

async function seqWrite(uri: string, source: string, target: string, o: Options): Promise<Sample> {
  const t0 = process.hrtime.bigint();
  await runOk('nbdcopy', [`--request-size=1048576`, `--connections=${o.connections}`, `--threads=${o.connections}`, source, uri]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  syncFile(target); // untimed: don't leave a GiB of dirty pages to the next measurement
  return { value: o.size / s / 1e6, extra: { seconds: s } };
}

interface FioJob {
  error: number;
  read: { iops: number; bw: number; total_ios: number; clat_ns: { mean: number; percentile?: Record<string, number> } };
}

async function rand4k(uri: string, dir: string, o: Options): Promise<Sample> {
  const out = join(dir, 'fio.json');
  await runOk('fio', [
    '--name=rand4k', '--ioengine=nbd', `--uri=${uri}`, '--rw=randread', '--bs=4k', '--iodepth=16',
    '--norandommap', '--randrepeat=0', '--time_based', '--ramp_time=1', `--runtime=${o.randSeconds}`,
    '--output-format=json', `--output=${out}`,
  ], (o.randSeconds + 30) * 1000);
  const job = parseFio(readFileSync(out, 'utf8')).jobs[0]!;
  if (job.error) throw new Error(`fio job error ${job.error}`);
  const p = job.read.clat_ns.percentile ?? {};
  return {
    value: job.read.iops,
    extra: { clat_mean_us: job.read.clat_ns.mean / 1000, clat_p99_us: (p['99.000000'] ?? NaN) / 1000 },
  };
}

/** fio's JSON, tolerating the engine's "fio: connected to NBD server" chatter around it. */
export function parseFio(text: string): { jobs: FioJob[] } {
  const start = text.search(/^\{/m);
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error(`no JSON in fio output:\n${text.slice(0, 2000)}`);
  return JSON.parse(text.slice(start, end + 1)) as { jobs: FioJob[] };
}


// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const note = (s: string) => process.stderr.write(`${s}\n`);

  const missing: string[] = [];
  for (const t of ['qemu-nbd', 'nbdcopy', 'fio']) if (!(await hasTool(t))) missing.push(t);
  if (missing.length) throw new Error(`missing peer tool(s): ${missing.join(', ')}`);
  const versions = {
    node: process.version,
    qemu_nbd: (await run('qemu-nbd', ['--version'])).stdout.split('\n')[0]!.trim(),
    nbdcopy: (await run('nbdcopy', ['--version'])).stdout.split('\n')[0]!.trim(),
    fio: (await run('fio', ['--version'])).stdout.trim(),
  };

  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-'));
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      note(`bench/nbd: ${sig}, cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    if (o.profileDir) mkdirSync(o.profileDir, { recursive: true });
    const image = join(dir, 'image.raw');
    const target: Record<Server, string> = { ours: join(dir, 'target-ours.raw'), qemu_nbd: join(dir, 'target-qemu.raw') };
    note(`bench/nbd: creating ${formatBytes(o.size)} image and targets in ${dir}`);
    await makeImage(image, o.size);
    for (const s of SERVERS) { copyFileSync(image, target[s]); syncFile(target[s]); }

    note('bench/nbd: starting servers');
    const readSrv: Record<Server, Running> = {
      ours: await startOurs('ours-read', image, join(dir, 'ours-read.sock'), o.profileDir),
      qemu_nbd: await startQemu('qemu-read', image, join(dir, 'qemu-read.sock')),
    };
    const writeSrv: Record<Server, Running> = {
      ours: await startOurs('ours-write', target.ours, join(dir, 'ours-write.sock'), o.profileDir),
      qemu_nbd: await startQemu('qemu-write', target.qemu_nbd, join(dir, 'qemu-write.sock')),
    };
    const all = [...Object.values(readSrv), ...Object.values(writeSrv)];

    // Warm-up, untimed: pulls the image into the page cache and warms the JITs
    // on both the read and the write path.
    note('bench/nbd: warm-up');
    for (const s of SERVERS) {
      await runOk('nbdcopy', ['--request-size=1048576', readSrv[s].uri, 'null:']);
      if (o.metrics.includes('seq_write')) {
        await runOk('nbdcopy', ['--request-size=1048576', image, writeSrv[s].uri]);
        syncFile(target[s]);
      }
    }

    const clk = Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
    const samples: Record<Server, Record<Metric, Sample[]>> = {
      ours: { seq_read: [], seq_write: [], rand4k_read: [] },
      qemu_nbd: { seq_read: [], seq_write: [], rand4k_read: [] },
    };
    // On a shared machine a ratio means little without the load it was measured under.
    const loadNow = () => loadavg().map((l) => round(l, 2));
    const loadAtStart = loadNow();
    for (let i = 0; i < o.runs; i++) {
      const order: Server[] = i % 2 === 0 ? ['ours', 'qemu_nbd'] : ['qemu_nbd', 'ours'];
      for (const m of o.metrics) {
        for (const s of order) {
          checkAlive(all);
          await quiesce(all, clk);
          const srv = m === 'seq_write' ? writeSrv[s] : readSrv[s];
          const cpu0 = cpuSeconds(srv.child.pid!, clk);
          let r: Sample;
          if (m === 'seq_read') r = await seqRead(srv.uri, o);
          else if (m === 'seq_write') r = await seqWrite(srv.uri, image, target[s], o);
          else r = await rand4k(srv.uri, dir, o);
          r.cpu = cpuSeconds(srv.child.pid!, clk) - cpu0;
          samples[s][m].push(r);
          note(`  run ${i + 1}/${o.runs}  ${m.padEnd(11)} ${LABEL[s].padEnd(8)} ${fmt(r.value).padStart(9)} ${UNITS[m]}  (load ${loadNow()[0]})`);
        }
      }
    }
    const loadAtEnd = loadNow();
    checkAlive(all);
    await cleanup(); // also writes the CPU profiles (on our servers' graceful exit)
    if (o.profileDir) note(`bench/nbd: CPU profiles in ${o.profileDir}`);

    const medians = (s: Server) =>
      Object.fromEntries(o.metrics.map((m) => [m, round(median(samples[s][m].map((x) => x.value)))])) as Record<Metric, number>;
    const extras = (s: Server): { rand4k_clat_mean_us?: number; rand4k_clat_p99_us?: number; server_cpu_s: Partial<Record<Metric, number>> } => {
      const out: { rand4k_clat_mean_us?: number; rand4k_clat_p99_us?: number; server_cpu_s: Partial<Record<Metric, number>> } = {
        server_cpu_s: Object.fromEntries(o.metrics.map((m) => [m, round(median(samples[s][m].map((x) => x.cpu!)), 2)])),
      };
      const rs = samples[s].rand4k_read;
      if (rs.length) {
        out.rand4k_clat_mean_us = round(median(rs.map((x) => x.extra!.clat_mean_us!)));
        out.rand4k_clat_p99_us = round(median(rs.map((x) => x.extra!.clat_p99_us!)));
      }
      return out;
    };
    const ours = medians('ours');
    const qemu = medians('qemu_nbd');
    const headline = Object.fromEntries(o.metrics.map((m) => [m, round(ours[m] / qemu[m], 3)])) as Record<Metric, number>;
    const report = {
      headline,
      goals: Object.fromEntries(o.metrics.map((m) => [m, GOALS[m]])),
      ours: { ...ours, ...extras('ours') },
      qemu_nbd: { ...qemu, ...extras('qemu_nbd') },
      units: Object.fromEntries(o.metrics.map((m) => [m, UNITS[m]])),
      samples: Object.fromEntries(SERVERS.map((s) => [s, Object.fromEntries(o.metrics.map((m) => [m, samples[s][m].map((x) => round(x.value))]))])),
      runs: o.runs,
      size: o.size,
      rand_seconds: o.randSeconds,
      nbdcopy_connections: o.connections,
      transport: 'unix',
      qemu_nbd_options: '-f raw -e 4 -t --cache=writeback --aio=threads',
      load_average: { start: loadAtStart, end: loadAtEnd },
      versions,
    };

    if (o.json) {
      process.stdout.write(JSON.stringify(report) + '\n');
    } else {
      const rows = o.metrics.map((m) => {
        const ok = headline[m] >= GOALS[m];
        return [m, UNITS[m], fmt(ours[m]), fmt(qemu[m]), headline[m].toFixed(2), `>= ${GOALS[m].toFixed(1)} ${ok ? 'ok' : 'BELOW'}`];
      });
      const head = ['metric', 'unit', 'flimcd', 'qemu-nbd', 'ours/qemu', 'goal'];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
      process.stdout.write(
        `\nNBD server benchmark: ${formatBytes(o.size)} fully allocated raw image, Unix sockets, median of ${o.runs} runs (higher is better)\n\n` +
        `${line(head)}\n${w.map((n) => '-'.repeat(n)).join('  ')}\n${rows.map(line).join('\n')}\n`,
      );
      process.stdout.write(`\nserver CPU time per sample, median (user+sys, all threads): ${o.metrics
        .map((m) => `${m} flimcd ${report.ours.server_cpu_s[m]} s / qemu-nbd ${report.qemu_nbd.server_cpu_s[m]} s`).join('; ')}\n`);
      if (report.ours.rand4k_clat_mean_us !== undefined) {
        process.stdout.write(`rand4k completion latency (mean / p99 µs): flimcd ${report.ours.rand4k_clat_mean_us} / ${report.ours.rand4k_clat_p99_us}, qemu-nbd ${report.qemu_nbd.rand4k_clat_mean_us} / ${report.qemu_nbd.rand4k_clat_p99_us}\n`);
      }
      process.stdout.write(`load average (1, 5, 15 min): ${loadAtStart.join(' ')} at the start, ${loadAtEnd.join(' ')} at the end\n`);
      process.stdout.write(`${versions.qemu_nbd}; ${versions.nbdcopy}; ${versions.fio}; node ${versions.node}\n`);
    }
  } finally {
    await cleanup();
  }
}

function round(x: number, digits = 1): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

function fmt(x: number): string {
  return x >= 100 ? Math.round(x).toString() : x.toFixed(1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    if (interrupted) return; // the measurement in flight failed because its server was stopped
    process.stderr.write(`bench/nbd: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
