/**
 * A QEMU without a guest OS, for QMP-level tests: `-M none` (no machine at all)
 * or a small PC that only runs its firmware. Quick to start, and cheap on CPU,
 * where a booted guest would add nothing to what the test checks.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp.ts';
import { PEER_PATH } from './peers.ts';
import type { TestCtx } from './test-context.ts';

export interface BareQemu {
  /** A QMP monitor left free for the code under test (a QMP monitor takes one client at a time). */
  qmpPath: string;
  /** A connection to a second monitor, for the test's own checks. */
  qmp: QmpClient;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startBareQemu(t: TestCtx, dir: string, name: string, args: string[]): Promise<BareQemu> {
  const qmpPath = join(dir, `${name}.qmp`);
  const testQmpPath = join(dir, `${name}-test.qmp`);
  const monitors = [qmpPath, testQmpPath].flatMap((p) => ['-qmp', `unix:${p},server=on,wait=off`]);
  const proc = spawn('qemu-system-x86_64', ['-nodefaults', '-no-user-config', '-display', 'none', '-accel', 'tcg', ...monitors, ...args], { env: { ...process.env, PATH: PEER_PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGKILL');
    await gone;
  };
  t.after(stop);
  const qmp = await QmpClient.connect({ kind: 'unix', path: testQmpPath }, { name, connectTimeoutMs: 20_000 }).catch((e: unknown) => {
    throw new Error(`${name}: ${(e as Error).message}\n${err}`);
  });
  t.after(() => qmp.close());
  return { qmpPath, qmp, stderr: () => err, stop };
}
