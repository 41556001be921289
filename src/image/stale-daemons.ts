/**
 * qemu-storage-daemons left behind by a flimcd that was killed (SIGKILL, OOM,
 * power to the process only): the daemon runs in its own process group, so it
 * outlives flimcd, keeps the image open and holds QEMU's image lock, and the
 * next start could not open the image. Each daemon flimcd starts in a state
 * directory gets a record beside its socket (`qsd-….pid`: daemon pid, the
 * flimcd pid that owns it, socket, file); the next start reaps the records of
 * that directory:
 * - a daemon whose command line does not hold the record's socket is not
 *   ours (it exited and its pid was reused): the record goes, the process is
 *   never signalled;
 * - a daemon whose parent is still the recorded owner belongs to a live
 *   flimcd (two commands sharing a state directory): left alone;
 * - otherwise its owner died: SIGTERM, SIGKILL after a grace period, then the
 *   socket and the record go.
 * Linux only (/proc), as flimcd is.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** The daemon's `--nbd-server` argument for a socket: what a record's daemon must have on its command line. */
export function nbdServerArg(socketPath: string): string {
  return JSON.stringify({ addr: { type: 'unix', path: socketPath } });
}

export interface DaemonRecord {
  /** The daemon's pid. */
  pid: number;
  /** The flimcd process that started it. */
  owner: number;
  socket: string;
  file: string;
}

const RECORD_NAME = /^qsd-[0-9a-z-]+\.pid$/;
/** Records looked at per start: a state directory holds one or two; bounds the work on a cluttered one. */
const MAX_RECORDS = 64;
/** SIGTERM, then SIGKILL after this long; then give up waiting after as long again. */
const REAP_GRACE_MS = 5_000;
const REAP_POLL_MS = 20;

/** The record file beside a daemon's socket (`qsd-X.sock` → `qsd-X.pid`). */
export function recordPath(socketPath: string): string {
  return socketPath.replace(/\.sock$/, '.pid');
}

export function writeDaemonRecord(r: DaemonRecord): void {
  writeFileSync(recordPath(r.socket), JSON.stringify(r) + '\n', { mode: 0o600 });
}

export function removeDaemonRecord(socketPath: string): void {
  rmSync(recordPath(socketPath), { force: true });
}

/** The process's argv, or undefined when it is gone (or a zombie, whose cmdline is empty). */
function commandLine(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.split('\0') : undefined;
  } catch {
    return undefined;
  }
}

/** The parent pid from /proc/PID/stat (the field after the state, which follows the last ')'), or undefined. */
function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

function parseRecord(text: string): DaemonRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<DaemonRecord>;
    if (Number.isInteger(r.pid) && r.pid! > 1 && Number.isInteger(r.owner) && typeof r.socket === 'string' && typeof r.file === 'string') return r as DaemonRecord;
  } catch {
    // a torn or foreign file: treated as no record
  }
  return undefined;
}

/** Is `pid` still running the daemon of `socket`? */
function runsDaemon(pid: number, socket: string): boolean {
  return commandLine(pid)?.includes(nbdServerArg(socket)) ?? false;
}

async function waitGone(pid: number, socket: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (runsDaemon(pid, socket)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, REAP_POLL_MS));
  }
  return true;
}

/**
 * Stops the daemons of `dir`'s records whose flimcd died, and drops records
 * of daemons that are gone. Returns the pids it stopped.
 */
export async function reapStaleDaemons(dir: string, log: Logger, o: { graceMs?: number } = {}): Promise<number[]> {
  const grace = o.graceMs ?? REAP_GRACE_MS;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => RECORD_NAME.test(n)).slice(0, MAX_RECORDS);
  } catch {
    return [];
  }
  const reaped: number[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let r: DaemonRecord | undefined;
    try {
      r = parseRecord(readFileSync(path, 'utf8'));
    } catch {
      continue;
    }
    if (!r || !runsDaemon(r.pid, r.socket)) {
      // Gone (or the pid now belongs to a stranger, who is never signalled): only the files remain.
      if (r) rmSync(r.socket, { force: true });
      rmSync(path, { force: true });
      continue;
    }
    if (parentPid(r.pid) === r.owner) {
      log.debug({ pid: r.pid, owner: r.owner, socket: r.socket }, 'qemu-storage-daemon of a running flimcd shares this state directory; left alone');
      continue;
    }
    log.warn({ pid: r.pid, owner: r.owner, file: r.file, socket: r.socket }, 'stopping a qemu-storage-daemon left running by a flimcd that died');
    try {
      process.kill(r.pid, 'SIGTERM');
      if (!(await waitGone(r.pid, r.socket, grace))) {
        process.kill(r.pid, 'SIGKILL');
        if (!(await waitGone(r.pid, r.socket, grace))) {
          log.error({ pid: r.pid }, 'a stale qemu-storage-daemon did not exit after SIGKILL');
          continue;
        }
      }
    } catch (e) {
      // ESRCH: it exited in between. EPERM: another user's process, which is not ours to stop.
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') {
        log.error({ pid: r.pid, err: (e as Error).message }, 'cannot stop a stale qemu-storage-daemon');
        continue;
      }
    }
    rmSync(r.socket, { force: true });
    rmSync(path, { force: true });
    reaped.push(r.pid);
  }
  return reaped;
}
