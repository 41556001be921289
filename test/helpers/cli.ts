import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PEER_PATH } from './peers.ts';
import { spawnWithTimeout, type SpawnResult } from './spawn.ts';

export const FLIMCD_BIN = fileURLToPath(new URL('../../scripts/flimcd-src.mjs', import.meta.url));

export type CliResult = SpawnResult;

/** Runs the flimcd command to completion (killed and rejected after `timeoutMs`, default 60 s). */
export function flimcd(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return spawnWithTimeout(process.execPath, [FLIMCD_BIN, ...args], { timeoutMs: opts.timeoutMs ?? 60000, env: { PATH: PEER_PATH, ...opts.env } });
}

/** Starts a long-running flimcd command and resolves once a stdout line matches `ready`. */
export function flimcdBackground(args: string[], ready: RegExp, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ child: ChildProcess; line: string; output: () => { stdout: string; stderr: string }; exited: Promise<CliResult> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLIMCD_BIN, ...args], { env: { ...process.env, PATH: PEER_PATH, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let done = false;
    const exited = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
    const timer = setTimeout(() => {
      if (done) return;
      child.kill('SIGKILL');
      reject(new Error(`flimcd ${args.join(' ')} not ready in time\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const line = stdout.split('\n').find((l) => ready.test(l));
      if (line && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ child, line, output: () => ({ stdout, stderr }), exited });
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    void exited.then((r) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`flimcd ${args.join(' ')} exited ${r.code} before ready\n${r.stdout}\n${r.stderr}`));
      }
    });
  });
}

/** Starts flimcd without waiting for anything; `exited` settles with its output. */
export function flimcdSpawn(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; exited: Promise<CliResult> } {
  const child = spawn(process.execPath, [FLIMCD_BIN, ...args], { env: { ...process.env, PATH: PEER_PATH, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, exited };
}

/** A flimcd process a test watches: its output so far, whether it runs, its exit. */
export interface WatchedFlimcd {
  child: ChildProcess;
  exited: Promise<CliResult>;
  /** Whether stdout or stderr (logs) matched yet. */
  seen(re: RegExp): boolean;
  /** The last 3000 characters of each stream, for assertion messages. */
  output(): string;
  running(): boolean;
}

/** Starts flimcd with info logs on stderr, killed when the test ends if it still runs. */
export function flimcdWatched(t: { after(fn: () => void): void }, args: string[]): WatchedFlimcd {
  const child = spawn(process.execPath, [FLIMCD_BIN, ...args], { env: { ...process.env, PATH: PEER_PATH, FLIMCD_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  const running = () => child.exitCode === null && child.signalCode === null;
  t.after(() => {
    if (running()) child.kill('SIGKILL');
  });
  return {
    child, exited, running,
    seen: (re) => re.test(stdout) || re.test(stderr),
    output: () => `--- stdout\n${stdout.slice(-3000)}\n--- stderr\n${stderr.slice(-3000)}`,
  };
}
