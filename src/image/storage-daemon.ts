/**
 * A supervised `qemu-storage-daemon` that opens one image file in a format of
 * QEMU's (qcow2, with its backing chain) and exports it over NBD on a unix
 * socket: flimcd reads and writes qcow2 through QEMU's own block layer, never
 * a parser of its own. The export has the `qemu:allocation-depth` meta
 * context on, so the source can tell which ranges come from the backing chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ErrorCode, FlimcdError, UsageError, systemErrorCode } from '../errors.ts';
import { socketAlive } from '../util/unix-socket.ts';
import { nbdServerArg, reapStaleDaemons, removeDaemonRecord, writeDaemonRecord } from './stale-daemons.ts';

export const DEFAULT_STORAGE_DAEMON = 'qemu-storage-daemon';
/** The NBD export's name inside the daemon. */
export const STORAGE_DAEMON_EXPORT = 'disk';
/** Longest unix socket path Linux takes (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH = 107;
/** Start-up: how long to wait for the socket before giving up, and how often to look. */
const START_TIMEOUT_MS = 30_000;
const START_POLL_MS = 20;
/** Stop: SIGTERM, then SIGKILL after this long. */
const STOP_GRACE_MS = 5_000;
/** Most stderr kept for error messages. */
const STDERR_KEEP = 4096;

export interface StorageDaemonOptions {
  /** The image file, opened by the daemon. */
  file: string;
  format: 'qcow2' | 'raw';
  writable: boolean;
  /**
   * Directory for the NBD socket and the daemon's record (the agent's state directory), where a start
   * also stops daemons left by a flimcd that was killed (stale-daemons.ts); a temporary directory
   * without it or if its path is too long (and then nothing to reap).
   */
  socketDir?: string;
  /** The daemon's binary (default `qemu-storage-daemon` on PATH). */
  binary?: string;
  log: Logger;
  /** Named in errors (`--image`, `--backing`). */
  flag?: string;
}

/** How the daemon ended when nobody asked it to: exit code or signal. */
export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export class StorageDaemon {
  /** Settles when the daemon exits, asked or not. */
  readonly exited: Promise<DaemonExit>;
  private stopping = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly socketPath: string,
    private readonly ownDir: string | undefined,
    exited: Promise<DaemonExit>,
    private readonly o: StorageDaemonOptions,
  ) {
    this.exited = exited;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True once the daemon has exited without stop() asking it to. */
  get crashed(): boolean {
    return !this.stopping && (this.child.exitCode !== null || this.child.signalCode !== null);
  }

  /** The crash as an error for whoever's I/O failed because of it. */
  crashError(exit: DaemonExit): FlimcdError {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const why = lastLine(exit.stderr);
    return new FlimcdError(`qemu-storage-daemon (pid ${this.pid}) serving ${this.o.file} ${how}${why ? `: ${why}` : ''}`, ErrorCode.STORAGE_DAEMON);
  }

  /**
   * Starts the daemon and waits until its socket accepts connections. A daemon
   * that cannot open the image (missing backing file, corrupt header, not in
   * this format) exits at once: that is bad input, a UsageError with its reason.
   */
  static async start(o: StorageDaemonOptions): Promise<StorageDaemon> {
    const flag = o.flag ?? '--image';
    const binary = o.binary ?? DEFAULT_STORAGE_DAEMON;
    let ownDir: string | undefined;
    // Unique per start: one process may run several daemons in one state directory (an image and its base).
    let socketPath = o.socketDir ? join(o.socketDir, `qsd-${process.pid}-${randomBytes(4).toString('hex')}.sock`) : '';
    if (!o.socketDir || socketPath.length > MAX_SOCKET_PATH) {
      ownDir = mkdtempSync(join(tmpdir(), 'flimcd-qsd-'));
      socketPath = join(ownDir, 'qsd.sock');
    } else {
      // A daemon a killed flimcd left here would still hold the image (and QEMU's lock on it).
      await reapStaleDaemons(o.socketDir, o.log);
    }
    rmSync(socketPath, { force: true });
    const ro = !o.writable;
    const args = [
      '--blockdev', JSON.stringify({ driver: 'file', 'node-name': 'file0', filename: o.file, 'read-only': ro, 'auto-read-only': false }),
      '--blockdev', JSON.stringify({ driver: o.format, 'node-name': 'disk0', file: 'file0', 'read-only': ro }),
      '--nbd-server', nbdServerArg(socketPath),
      '--export', JSON.stringify({ type: 'nbd', id: 'export0', 'node-name': 'disk0', name: STORAGE_DAEMON_EXPORT, writable: o.writable, 'allocation-depth': true }),
    ];
    let child: ChildProcess;
    let stderr = '';
    const spawned = new Promise<void>((resolve, reject) => {
      // Its own process group: a terminal's Ctrl-C (or a supervisor's group signal) reaches flimcd, which stops the daemon after the VM's I/O is done, not the daemon under it.
      child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(e));
    });
    try {
      await spawned;
    } catch (e) {
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
      const code = systemErrorCode(e);
      if (code === 'ENOENT') throw new UsageError(`${flag}: ${o.format} images are opened through ${binary}, which was not found${o.binary ? '' : ' on PATH (install qemu-system-common, or name it with --storage-daemon)'}`);
      throw new UsageError(`${flag}: could not start ${binary}: ${(e as Error).message}`);
    }
    const proc = child!;
    if (!ownDir && proc.pid !== undefined) writeDaemonRecord({ pid: proc.pid, owner: process.pid, socket: socketPath, file: o.file });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    const exited = new Promise<DaemonExit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal, stderr })));
    // Stderr may still be arriving at 'exit'; 'close' has all of it.
    const closed = new Promise<DaemonExit>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal, stderr })));
    const daemon = new StorageDaemon(proc, socketPath, ownDir, closed, o);
    let early: DaemonExit | undefined;
    void exited.then(() => closed).then((x) => (early = x));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!early) {
      if (existsSync(socketPath) && (await socketAlive(socketPath))) break;
      if (Date.now() > deadline) {
        await daemon.stop();
        throw new FlimcdError(`${binary} did not open its socket ${socketPath} within ${START_TIMEOUT_MS / 1000} s`, ErrorCode.STORAGE_DAEMON);
      }
      await new Promise((r) => setTimeout(r, START_POLL_MS));
    }
    if (early) {
      daemon.cleanup();
      const why = daemonReason(early.stderr) || (early.signal ? `killed by ${early.signal}` : `exit code ${early.code}`);
      throw new UsageError(`${flag}: ${o.file} cannot be opened as ${o.format}: ${why}`);
    }
    o.log.debug({ pid: proc.pid, socket: socketPath, file: o.file, format: o.format, writable: o.writable }, 'qemu-storage-daemon serving the image');
    void closed.then((x) => {
      if (!daemon.stopping) o.log.error({ pid: proc.pid, code: x.code, signal: x.signal, stderr: lastLine(x.stderr) }, 'qemu-storage-daemon exited while serving the image');
    });
    return daemon;
  }

  /** Stops the daemon (SIGTERM, SIGKILL after a grace period) and removes its socket. */
  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.cleanup();
  }

  private cleanup(): void {
    rmSync(this.socketPath, { force: true });
    if (!this.ownDir) removeDaemonRecord(this.socketPath);
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }
}

/** QEMU's reason without its "qemu-storage-daemon: --blockdev {...}: " prefix. */
function daemonReason(stderr: string): string {
  const line = lastLine(stderr);
  const m = /^[^:]*: --[a-z-]+ (?:\{.*\}|\S+): (.*)$/.exec(line);
  return m?.[1] ?? line;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines[lines.length - 1] ?? '';
}
