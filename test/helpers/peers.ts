/**
 * Real peers (qemu-io, qemu-img, nbdinfo, nbdcopy, nbdsh, nbdkit, fio) for
 * interop tests. Under CI=true a missing peer fails the test: it is never
 * skipped. Outside CI it skips with a note, so a laptop without QEMU can still
 * run the rest.
 */
import { spawnSync } from 'node:child_process';
import { spawnWithTimeout, type SpawnOptions, type SpawnResult } from './spawn.ts';
import type { TestContext } from 'node:test';

const found = new Map<string, boolean>();

/** PATH with /usr/bin first: nbdsh runs `python3 -m nbd`, and pyenv's python3 lacks the nbd module. */
export const PEER_PATH = `/usr/bin:/usr/sbin:/bin:${process.env.PATH ?? ''}`;

export function hasPeer(name: string): boolean {
  let ok = found.get(name);
  if (ok === undefined) {
    ok = spawnSync('sh', ['-c', `command -v ${name}`], { env: { ...process.env, PATH: PEER_PATH } }).status === 0;
    found.set(name, ok);
  }
  return ok;
}

/** Returns false (after marking the test skipped) when the peer is missing outside CI; throws in CI. */
export function requirePeers(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => !hasPeer(n));
  if (missing.length === 0) return true;
  if (process.env.CI) throw new Error(`peer tool(s) missing under CI: ${missing.join(', ')}; .ci/run must install them`);
  t.skip(`missing peer: ${missing.join(', ')}`);
  return false;
}

export type RunResult = SpawnResult;

/** Runs a peer tool with a time limit; never throws on non-zero exit. */
export function run(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<RunResult> {
  return spawnWithTimeout(cmd, args, { ...opts, env: { PATH: PEER_PATH, ...opts.env } });
}

/** Like run() but throws with the tool's output when it exits non-zero. */
export async function runOk(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
