/**
 * bench:perf's migration rig: `flimcd target`, `flimcd wan` and `flimcd source` as three processes
 * (each its own event loop, as in production), optionally inside network namespaces, with the WAN
 * emulator's byte counts sampled every 100 ms. Not product code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MigrationReport } from '../../src/migrate/report.ts';

const BIN = fileURLToPath(new URL('../../bin/flimcd.js', import.meta.url));
const SAMPLE_MS = 100;

export interface ProcessSpec {
  /** Runs the command inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** FLIMCD_LOG_LEVEL (default: the environment's, else error). */
  logLevel?: string;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** The first JSON line on stdout carrying this event. */
  event: (name: string) => Promise<Record<string, unknown>>;
}

function startFlimcd(args: string[], spec: ProcessSpec = {}): Started {
  const cmd = spec.netns ? ['ip', 'netns', 'exec', spec.netns, process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLIMCD_LOG_LEVEL: spec.logLevel ?? process.env.FLIMCD_LOG_LEVEL ?? 'error' } });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; for (const w of waiters.splice(0)) w(); });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4_000_000) err += d; });
  const exited = new Promise<number | null>((r) => child.on('close', (c) => { r(c); for (const w of waiters.splice(0)) w(); }));
  const event = (name: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const look = () => {
      const line = out.split('\n').find((l) => l.includes(`"event":"${name}"`));
      if (line) return resolve(JSON.parse(line) as Record<string, unknown>);
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`flimcd ${args[0]} exited ${child.exitCode ?? child.signalCode} without "${name}": ${err.slice(-2000)}`));
      waiters.push(look);
    };
    look();
  });
  return { child, stdout: () => out, stderr: () => err, exited, event };
}

/** GET a JSON endpoint over a unix socket; undefined when it does not answer. */
export function getJson<T>(socketPath: string, path: string): Promise<T | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        try { resolve(JSON.parse(body) as T); } catch { resolve(undefined); }
      });
    });
    req.on('error', () => resolve(undefined)).on('timeout', () => { req.destroy(); resolve(undefined); });
    req.end();
  });
}

export interface ByteSample { atMs: number; forwardBytes: number }

export interface RigOptions {
  dir: string;
  image: string;
  /** The emulator's rate and round trip. */
  bandwidthBps: number;
  rttMs: number;
  /** Namespaces: source and emulator in `source`, target in `target`, reached at targetHost. */
  netns?: { source: string; target: string; targetHost: string };
  /** Extra `flimcd source` options. */
  sourceArgs?: string[];
  /** The agents' log level (their JSON log lines come back in RigRun.logs). */
  logLevel?: string;
  /** Runs once the source serves its export (the VM's workload), until the migration ends. */
  duringMigration?: (sourceNbd: string, stop: Promise<void>) => Promise<void>;
  timeoutMs?: number;
}

export interface RigRun {
  report: MigrationReport;
  samples: ByteSample[];
  /** The agents' log lines (stderr, JSON). */
  logs: { source: string; target: string };
}

/** The first JSON log line whose msg starts with `msg` (agents log JSON lines when stderr is not a terminal). */
export function logLine(log: string, msg: string): Record<string, unknown> | undefined {
  for (const l of log.split('\n')) {
    if (!l.includes(msg)) continue;
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      if (typeof o.msg === 'string' && o.msg.startsWith(msg)) return o;
    } catch { /* not JSON */ }
  }
  return undefined;
}

/** One migration through the emulator; resolves with the source's report and the emulator's byte samples. */
export async function migrateThroughWan(o: RigOptions): Promise<RigRun> {
  const procs: Started[] = [];
  const timer = setTimeout(() => { for (const p of procs) p.child.kill('SIGKILL'); }, o.timeoutMs ?? 600_000);
  const sock = (n: string) => join(o.dir, n);
  try {
    const tHost = o.netns?.targetHost ?? '127.0.0.1';
    const target = startFlimcd(['target', '--insecure', '--image', join(o.dir, 'dst.img'), '--listen', `tcp:${tHost}:0`, '--nbd', `unix:${sock('dst.sock')}`, '--state-dir', sock('dst-state'), '--exit-when-done', '--json'], { netns: o.netns?.target, logLevel: o.logLevel });
    procs.push(target);
    const listen = String((await target.event('listening')).listen);
    const wan = startFlimcd(['wan', '--listen', 'tcp:127.0.0.1:0', '--to', listen, '--bandwidth', `${o.bandwidthBps}bit`, '--rtt', `${o.rttMs}ms`, '--control', `unix:${sock('wan.ctl')}`, '--json'], { netns: o.netns?.source });
    procs.push(wan);
    const wanListen = String((await wan.event('listening')).address);
    const source = startFlimcd(['source', '--insecure', '--image', o.image, '--to', wanListen, '--nbd', `unix:${sock('src.sock')}`, '--state-dir', sock('src-state'), '--bandwidth', `${o.bandwidthBps}bit`, '--json', ...(o.sourceArgs ?? [])], { netns: o.netns?.source, logLevel: o.logLevel });
    procs.push(source);
    const samples: ByteSample[] = [];
    const t0 = performance.now();
    let done = false;
    const sampling = (async () => {
      while (!done) {
        const s = await getJson<{ forward: { bytesOut: number } }>(sock('wan.ctl'), '/stats');
        if (s) samples.push({ atMs: performance.now() - t0, forwardBytes: s.forward.bytesOut });
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
    let stopWorkload!: () => void;
    const stopped = new Promise<void>((r) => (stopWorkload = r));
    const workload = o.duringMigration ? source.event('listening').then(() => o.duringMigration!(`unix:${sock('src.sock')}`, stopped)) : Promise.resolve();
    const code = await source.exited;
    stopWorkload();
    done = true;
    await Promise.all([sampling, workload, target.exited]);
    const line = source.stdout().split('\n').find((l) => l.includes('"event":"report"'));
    if (code !== 0 || !line) throw new Error(`flimcd source exited ${code}: ${source.stderr().slice(-2000)}\ntarget: ${target.stderr().slice(-1000)}`);
    return { report: JSON.parse(line) as MigrationReport, samples, logs: { source: source.stderr(), target: target.stderr() } };
  } finally {
    clearTimeout(timer);
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
  }
}

/**
 * The emulator's forward rate during the bulk transfer: bytes between the samples where 10 % and
 * 90 % of the migration's forward bytes had left the link, over the time between them (start-up,
 * the cut-over and the last rounds left out).
 */
export function steadyRateBps(samples: ByteSample[]): number {
  const total = samples.at(-1)?.forwardBytes ?? 0;
  const a = samples.find((s) => s.forwardBytes >= 0.1 * total);
  const b = samples.find((s) => s.forwardBytes >= 0.9 * total);
  if (!a || !b || b.atMs <= a.atMs) return NaN;
  return ((b.forwardBytes - a.forwardBytes) * 8 * 1000) / (b.atMs - a.atMs);
}
