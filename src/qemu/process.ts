/**
 * Runs a QEMU process for a test or benchmark guest: TCG (the hosts' /dev/kvm
 * is a nested hypervisor that stock kernels do not run under), no default
 * devices, a QMP socket, the serial console on a unix socket, and the disk on
 * an NBD export (`-blockdev driver=nbd`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import type { Address } from '../util/address.ts';
import { QmpClient } from './qmp.ts';
import { ErrorCode, FlimcdError, QmpError } from '../errors.ts';

export interface QemuGuestOptions {
  name: string;
  /** Directory for the QMP and serial sockets. */
  dir: string;
  kernel: string;
  initrd: string;
  append: string;
  memMiB?: number;
  /**
   * The disk: an NBD export, or a local file (the peer's setup: QEMU's own storage migration),
   * raw or qcow2 (a qcow2 opens its backing chain from its header), optionally with
   * `detect-zeroes` (`unmap`: zero writes become holes, as a mirror target should).
   */
  disk: { addr: Address; exportName?: string } | { file: string; format?: 'raw' | 'qcow2'; detectZeroes?: 'on' | 'unmap' };
  /** `defer` starts the destination side of a migration (`-incoming defer`). */
  incoming?: 'defer';
  /** Disk size, for the explicit CHS geometry (see chsGeometry). */
  diskBytes: number;
  binary?: string;
  extraArgs?: string[];
}

/** How long QEMU holds the guest's requests while it reconnects to a restarted agent (seconds), instead of failing them. */
export const NBD_RECONNECT_DELAY_S = 30;

/**
 * QEMU's -blockdev for an NBD export. `reconnect-delay`: when the agent is
 * restarted under the running VM, QEMU reconnects and the guest sees a stall,
 * not an I/O error.
 */
export function nbdBlockdev(addr: Address, nodeName: string, exportName?: string, reconnectDelayS = NBD_RECONNECT_DELAY_S): string {
  const server = addr.kind === 'unix' ? `server.type=unix,server.path=${addr.path}` : `server.type=inet,server.host=${addr.host},server.port=${addr.port}`;
  return `driver=nbd,${server}${exportName ? `,export=${exportName}` : ''},reconnect-delay=${reconnectDelayS},node-name=${nodeName}`;
}

/**
 * An explicit CHS geometry for virtio-blk. Without one, QEMU guesses it at
 * start-up by reading sector 0 — and at the target that read is held by the
 * flimcd export until cut-over, which blocks QEMU's main loop (and QMP) for
 * good. Both sides must use the same geometry anyway (it is device state).
 */
export function chsGeometry(bytes: number): string {
  const heads = 16;
  const secs = 63;
  const cyls = Math.max(1, Math.min(65535, Math.floor(bytes / 512 / heads / secs)));
  return `cyls=${cyls},heads=${heads},secs=${secs}`;
}

/** The serial console: collects lines, waits for patterns, sends input. */
export class SerialConsole {
  readonly lines: string[] = [];
  private partial = '';
  private readonly waiters = new Set<() => void>();
  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.partial += d;
      const parts = this.partial.split(/\r?\n/);
      this.partial = parts.pop() ?? '';
      for (const p of parts) this.lines.push(p.replace(/\r/g, ''));
      for (const w of [...this.waiters]) w();
    });
    socket.on('error', () => {});
  }

  static async connect(path: string, timeoutMs = 10_000): Promise<SerialConsole> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        return new SerialConsole(s);
      } catch (e) {
        if (Date.now() > deadline) throw new FlimcdError(`serial console ${path}: ${(e as Error).message}`, ErrorCode.QEMU);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  send(line: string): void {
    this.socket.write(line + '\n');
  }

  /** Waits for a line matching `re` (searching from line index `from`); returns its match. */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = () => {
        for (; i < this.lines.length; i++) {
          const m = this.lines[i]!.match(re);
          if (m) {
            done();
            resolve(m);
            return;
          }
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const timer = setTimeout(() => {
        done();
        reject(new FlimcdError(`no console line matching ${re} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-15).join('\n')}`, ErrorCode.GUEST_TIMEOUT));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export class QemuGuest {
  readonly stderr: string[] = [];
  private exited: { code: number | null; signal: string | null } | undefined;
  private constructor(
    readonly o: QemuGuestOptions,
    readonly proc: ChildProcess,
    readonly qmpPath: string,
    readonly serialPath: string,
    public qmp: QmpClient,
    public serial: SerialConsole,
  ) {}

  static args(o: QemuGuestOptions, qmpPath: string, serialPath: string): string[] {
    return [
      '-name', o.name,
      '-accel', 'tcg',
      '-m', String(o.memMiB ?? 256),
      '-nographic', '-nodefaults', '-no-user-config', '-no-reboot',
      '-kernel', o.kernel, '-initrd', o.initrd, '-append', o.append,
      '-chardev', `socket,id=ser0,path=${serialPath},server=on,wait=off`,
      '-serial', 'chardev:ser0',
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      ...('file' in o.disk
        ? ['-blockdev', `driver=file,filename=${o.disk.file},node-name=file0,cache.direct=off${o.disk.detectZeroes === 'unmap' ? ',discard=unmap' : ''}`, '-blockdev', `driver=${o.disk.format ?? 'raw'},file=file0,node-name=disk0${o.disk.detectZeroes ? `,detect-zeroes=${o.disk.detectZeroes}${o.disk.detectZeroes === 'unmap' ? ',discard=unmap' : ''}` : ''}`]
        : ['-blockdev', nbdBlockdev(o.disk.addr, 'disk0', o.disk.exportName)]),
      '-device', `virtio-blk-pci,drive=disk0,id=vd0,addr=0x4,${chsGeometry(o.diskBytes)}`,
      ...(o.incoming ? ['-incoming', o.incoming] : []),
      ...(o.extraArgs ?? []),
    ];
  }

  static async start(o: QemuGuestOptions): Promise<QemuGuest> {
    const qmpPath = join(o.dir, `${o.name}.qmp`);
    const serialPath = join(o.dir, `${o.name}.serial`);
    const proc = spawn(o.binary ?? 'qemu-system-x86_64', QemuGuest.args(o, qmpPath, serialPath), { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr: string[] = [];
    proc.stderr.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
    let exited: { code: number | null; signal: string | null } | undefined;
    const exitP = new Promise<never>((_, reject) =>
      proc.once('exit', (code, signal) => {
        exited = { code, signal };
        reject(new FlimcdError(`${o.name}: QEMU exited (${code ?? signal}) during start: ${stderr.join('').trim().slice(-800)}`, ErrorCode.QEMU));
      }),
    );
    exitP.catch(() => {});
    try {
      const qmp = await Promise.race([QmpClient.connect({ kind: 'unix', path: qmpPath }, { name: `${o.name} QMP`, connectTimeoutMs: 15_000 }), exitP]);
      const serial = await Promise.race([SerialConsole.connect(serialPath), exitP]);
      const g = new QemuGuest(o, proc, qmpPath, serialPath, qmp, serial);
      g.stderr.push(...stderr);
      proc.stderr.on('data', (d: string) => g.stderr.push(d));
      if (exited) g.exited = exited;
      proc.once('exit', (code, signal) => (g.exited = { code, signal }));
      return g;
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    }
  }

  get running(): boolean {
    return this.exited === undefined;
  }

  /** Quits QEMU (QMP quit, then SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 5000): Promise<void> {
    this.serial.close();
    if (this.exited) return;
    const gone = new Promise<void>((r) => (this.exited ? r() : this.proc.once('exit', () => r())));
    try {
      await this.qmp.quit(timeoutMs);
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await gone;
    clearTimeout(t);
  }
}
