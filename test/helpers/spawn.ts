/** Child processes for tests, always with a time limit so a hung child fails the test instead of hanging it. */
import { spawn } from 'node:child_process';

export interface SpawnResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Killed (SIGKILL) and rejected after this long; default 60 s. */
  timeoutMs?: number;
  /** Environment added to this process's. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin (which is then closed); stdin is empty otherwise. */
  input?: string;
}

/** Runs `cmd` to completion and collects its output; never rejects for a non-zero exit, only for a timeout or a failed spawn. */
export function spawnWithTimeout(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<SpawnResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a child that exits without reading stdin must not crash the test
    child.stdin.end(opts.input ?? '');
  });
}
