/**
 * A migration by the real agents as child processes (`flimcd target` and `flimcd source`
 * over the loopback, plaintext), each one's peak RSS (VmHWM) recorded as it exits. The
 * terabyte tests and `npm run bench:terabyte` drive it; not product code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { builtFlimcd } from '../built-cli.ts';

const BIN = builtFlimcd();
const PRELOAD = fileURLToPath(new URL('./peak-rss-preload.mjs', import.meta.url));

export interface AgentsRunOptions {
  /** Work directory: sockets, control endpoint and peak-RSS files go here. */
  dir: string;
  source: string;
  target: string;
  /** Run while the source pre-copies (it waits for an operator's cut-over meanwhile); then the cut-over is asked for. */
  duringPrecopy?: (sourceNbd: string) => Promise<void>;
  /** Kills both agents after this long (default 10 min). */
  timeoutMs?: number;
  /**
   * With duringPrecopy: the source dies (kill -9) the moment its status leaves pre-copy (its
   * control endpoint polled every 10 ms: in the cut-over, or on a fast run just after it), then
   * restarts with the same image and state and, without --manual-cutover, resumes to the end.
   */
  crashSourceInCutover?: boolean;
}

export interface AgentsRun {
  /** The source's final report (`"event":"report"`). */
  report: Record<string, unknown> & { verified?: boolean };
  peakRssMiB: { source: number; target: number };
  wallMs: number;
  /** With crashSourceInCutover: the phase the source reported just before it was killed. */
  killedInPhase?: string;
}

interface Agent {
  child: ChildProcess;
  ready: Promise<string>;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function start(args: string[], rssFile: string): Agent {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, FLIMCD_LOG_LEVEL: process.env.FLIMCD_LOG_LEVEL ?? 'warn', FLIMCD_PEAK_RSS_FILE: rssFile, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(PRELOAD).href}`.trim() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let onReady: (line: string) => void = () => {};
  const ready = new Promise<string>((resolve) => (onReady = resolve));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    const line = stdout.split('\n').find((l) => l.includes('"event":"listening"'));
    if (line) onReady(line);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  const readyOrExit = Promise.race([ready, exited.then((r) => { throw new Error(`flimcd ${args[0]} exited ${r.code} before listening\n${r.stderr.slice(-2000)}`); })]);
  readyOrExit.catch(() => {}); // a one-shot command never listens: only awaited for agents
  return { child, ready: readyOrExit, exited };
}

/** The source's phase from its control endpoint (undefined while it does not answer). */
function sourcePhase(socketPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/status', method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        try {
          resolve((JSON.parse(body) as { phase?: string }).phase);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined)).on('timeout', () => { req.destroy(); resolve(undefined); });
    req.end();
  });
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function peakMiB(file: string): number {
  if (!existsSync(file)) throw new Error(`no peak RSS recorded at ${file} (the agent did not exit normally)`);
  return Number(readFileSync(file, 'utf8')) / 1024;
}

/** Migrates `source` to `target` with the real agents; resolves when both have exited. */
export async function migrateWithAgents(o: AgentsRunOptions): Promise<AgentsRun> {
  const t0 = performance.now();
  const rss = { source: join(o.dir, 'source.rss'), target: join(o.dir, 'target.rss') };
  const agents: Agent[] = [];
  const timer = setTimeout(() => { for (const a of agents) a.child.kill('SIGKILL'); }, o.timeoutMs ?? 600_000);
  let killedInPhase: string | undefined;
  try {
    const target = start(['target', '--insecure', '--image', o.target, '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(o.dir, 'dst.sock')}`, '--exit-when-done', '--json'], rss.target);
    agents.push(target);
    const listen = (JSON.parse(await target.ready) as { listen: string }).listen;
    const ctl = `unix:${join(o.dir, 'src.ctl')}`;
    const nbd = `unix:${join(o.dir, 'src.sock')}`;
    const sourceArgs = ['source', '--insecure', '--image', o.source, '--to', listen, '--nbd', nbd, '--bandwidth', '10Gbit', '--control', ctl, '--json'];
    let source = start([...sourceArgs, ...(o.duringPrecopy ? ['--manual-cutover'] : [])], rss.source);
    agents.push(source);
    await source.ready;
    if (o.duringPrecopy) {
      await o.duringPrecopy(nbd);
      const cut = start(['cutover', '--control', ctl], join(o.dir, 'cutover.rss'));
      const r = await cut.exited;
      if (r.code !== 0) throw new Error(`flimcd cutover exited ${r.code}: ${r.stderr}`);
      if (o.crashSourceInCutover) {
        await until(async () => {
          const phase = await sourcePhase(join(o.dir, 'src.ctl'));
          if (phase === undefined || phase === 'starting' || phase === 'precopy') return false;
          source.child.kill('SIGKILL');
          killedInPhase = phase;
          return true;
        }, 120_000, 'the source to begin its cut-over');
        await source.exited;
        source = start(sourceArgs, rss.source);
        agents.push(source);
      }
    }
    const [s, t] = await Promise.all([source.exited, target.exited]);
    if (s.code !== 0) throw new Error(`the source exited ${s.code}\n${s.stderr.slice(-3000)}`);
    if (t.code !== 0) throw new Error(`the target exited ${t.code}\n${t.stderr.slice(-3000)}`);
    const line = s.stdout.split('\n').find((l) => l.includes('"event":"report"'));
    if (!line) throw new Error(`the source printed no report\n${s.stdout.slice(-2000)}`);
    return { report: JSON.parse(line) as AgentsRun['report'], peakRssMiB: { source: peakMiB(rss.source), target: peakMiB(rss.target) }, wallMs: performance.now() - t0, killedInPhase };
  } finally {
    clearTimeout(timer);
    for (const a of agents) a.child.kill('SIGKILL');
  }
}
