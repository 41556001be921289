/**
 * A whole-VM migration on this machine, for the VM test and `npm run bench:qemu`:
 * a real QEMU guest (TCG) running the self-checking workload of guest.ts,
 * migrated to a second QEMU through WAN emulators, either
 *
 * - `flimcd`: source and target agents (in this process, with their control
 *   endpoints) and `migrateVm` (vm-migrate.ts), exactly what
 *   `flimcd vm migrate` does; or
 * - `qemu-mirror`: QEMU's own storage migration as libvirt
 *   `--copy-storage-all` / `--copy-storage-inc` drives it (docs/qemu.md):
 *   `blockdev-mirror` (sync full, or sync top onto an overlay on the base the
 *   target holds) into an NBD export of the target QEMU (detect-zeroes=unmap),
 *   then the RAM migration with pause-before-switchover, `block-job-cancel`
 *   at the switch-over.
 *
 * Both methods get the same RAM settings (`ram`, `ramMaxBandwidth`), and every
 * image copy keeps its holes (sparseCopy).
 *
 * Both methods use the same two emulated links: one for the disk (flimcd's
 * agent link / the mirror's NBD connection) and one for QEMU's RAM stream,
 * with the same bandwidth and RTT. Wire bytes are what both proxies carried,
 * both directions.
 *
 * After the migration the guest (now at the target) keeps writing for a
 * while, then is told STOP: it re-reads every block it ever wrote and checks
 * it against its log in guest RAM (PASS/FAIL on the console). The host then
 * compares the image the target VM uses with the guest's final log (written
 * blocks) and with the original image (all other blocks).
 */
import { writeFileSync, truncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { spawnSync } from 'node:child_process';
import { buildInitramfs, guestCmdline, REPO_ROOT, type GuestKernel } from './guest.ts';
import { QemuGuest } from '../../src/qemu/process.ts';
import type { RamStart } from '../../src/qemu/ram-start.ts';
import { migrateVm, VmMigrationError, type VmMigrationResult, type VmProgress } from '../../src/qemu/vm-migrate.ts';
import { QmpClient } from '../../src/qemu/qmp.ts';
import { startAgentPair } from '../../src/demo/agent-pair.ts';
import { ControlServer } from '../../src/control/server.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { FileDisk } from '../../src/block/file.ts';
import { GateDisk } from '../../src/block/filters/gate.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { formatAddress, type Address } from '../../src/util/address.ts';
import type { MigrationReport } from '../../src/migrate/report.ts';
import { ErrorCode, FlimcdError } from '../../src/errors.ts';

export type VmMethod = 'flimcd' | 'qemu-mirror';

export interface GuestWorkload {
  bs?: number;
  reads?: number;
  hot?: number;
  pause?: number;
  /** Writes per second, open loop (guest.ts); absent: closed loop. */
  rate?: number;
  content?: 'random' | 'real';
}

/** Disks a caller prepared (see VmRigOptions.images). */
export interface RigImages {
  /** The VM's whole disk as a raw image: what the host compares the target's disk against. */
  original: string;
  /** The VM's disk as it starts; copied (sparse) into the run's folder. A qcow2 keeps its backing file. */
  vm: { file: string; format: 'raw' | 'qcow2' };
  /** A qcow2 base the target holds (read only): the target's disk is a new overlay on it. */
  targetBase?: string;
}

/** Is the replica index (`flimcd index`, TargetAgent `indexDir`) in this tree? */
export function replicaIndexAvailable(): boolean {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'flimcd.js'), 'index', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 && /Usage: flimcd index/.test(r.stdout);
}

export interface VmRigOptions {
  dir: string;
  kernel: GuestKernel;
  method: VmMethod;
  diskBytes: number;
  memMiB?: number;
  bandwidthBps: number;
  rttMs: number;
  workload?: GuestWorkload;
  /** Guest runs this long before the migration starts. */
  warmupMs?: number;
  /** Guest writes at the target before STOP (counted in 25s from its PROGRESS lines). */
  writesAtTarget?: number;
  seed?: number;
  /**
   * The base-image case: the VM's disk is this base with per-VM changes, and
   * the target already holds the base (`baseAtTarget`). For flimcd the target
   * image starts as a copy of the base; `indexDir` is passed when the replica
   * index is available. QEMU's mirror target disk starts as the base too.
   */
  base?: { changedShare: number; indexAvailable: boolean };
  /**
   * Negative control: the target VM's disk is a copy of the flimcd target image
   * taken when the RAM migration starts, i.e. a storage hand-over without the
   * final dirty set. The guest's check must then fail.
   */
  sabotage?: 'stale-handover';
  /**
   * Failure injection (flimcd only): `ram-link` sends QEMU's RAM stream to a
   * closed port; `after-storage-cutover` fails once the disk has been handed
   * over, before `migrate-continue`. Either way the VM must keep running at
   * the source with its data intact: the guest is checked there.
   */
  failAt?: 'ram-link' | 'after-storage-cutover';
  /** QEMU mirror's copy mode (qemu-mirror only); default write-blocking. */
  mirrorCopyMode?: 'background' | 'write-blocking';
  /** QEMU mirror's `granularity` and `buf-size` in bytes (qemu-mirror only); QEMU's defaults when absent. */
  mirrorTuning?: { granularity?: number; bufSize?: number };
  /**
   * The disks, prepared by the caller (instead of generated images and `base`):
   * with `targetBase`, `vm` is a qcow2 overlay on a base the target also holds
   * (the mirror runs `sync=top` onto a new overlay on `targetBase`; flimcd's
   * target creates its overlay on it with `backing`); without, the target starts empty.
   */
  images?: RigImages;
  /** Extra files for the guest's initramfs (realContentFiles for `workload.content` real). */
  guestFiles?: Array<{ name: string; data: Buffer }>;
  /** QEMU's RAM migration settings, the same for both methods: plain, or multifd (4 channels) with zstd. */
  ram?: 'plain' | 'multifd-zstd';
  /** RAM `max-bandwidth` in bytes/s for both methods (default twice the link). */
  ramMaxBandwidth?: number;
  /** flimcd only: when `migrateVm` starts the RAM migration (default converged). */
  ramStart?: RamStart;
  log: Logger;
  onProgress?: (p: VmProgress) => void;
}

export interface VmRigResult {
  method: VmMethod;
  /** writesAtTarget: writes the guest made after it resumed at the target (from its progress lines, ±25). */
  guest: { verdict: 'PASS' | 'FAIL'; line: string; mismatches: string[]; writes: number; writesAtTarget: number };
  host: { checkedWritten: number; checkedOther: number; mismatches: number; firstMismatch: string | null };
  /** From the first command of the migration until every block is at the target (flimcd: until its last block arrived; its verification follows, `verify_s`). */
  time_total_s: number;
  /** flimcd: from every block at the target until the run ended (the target's hash of its image and the comparison of roots). */
  verify_s?: number;
  downtime_ms: number;
  wire_bytes: number;
  wire_bytes_disk_link: number;
  wire_bytes_ram_link: number;
  vm: VmMigrationResult | null;
  flimcd: MigrationReport | null;
  peer: { mirror_ready_s: number; ram_s: number } | null;
  /** The guest's write rate over the whole run, bytes/s (writes × write size / guest uptime until STOP). */
  guest_write_Bps?: number;
  /** From the first command of the migration (target QEMU already started) until the VM runs at the target. */
  time_to_switch_s?: number;
  /** With failAt: the error, and where the VM was afterwards. */
  failure: { message: string; code: string; vmAt: string; sourceStatus: string; targetStatus: string } | null;
  serialTail: string[];
}

const BS = 65536;

/** Copies an image keeping its holes (never copyFileSync, which fills them). */
export function sparseCopy(from: string, to: string): void {
  const r = spawnSync('cp', ['--sparse=always', '--', from, to], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new FlimcdError(`cp --sparse=always ${from} ${to} failed: ${r.stderr || String(r.error)}`, ErrorCode.TEST);
}

function qemuImg(args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new FlimcdError(`qemu-img ${args.join(' ')} failed: ${r.stderr || String(r.error)}`, ErrorCode.TEST);
}

/** A new qcow2 overlay on `base` (a qcow2). */
export function createOverlay(file: string, base: string): void {
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', file]);
}

/** The guest-visible content of a qcow2 image as a sparse raw file (its writers stopped first; -U for the image lock). */
function toRaw(image: string, format: 'raw' | 'qcow2', out: string): string {
  if (format === 'raw') return image;
  qemuImg(['convert', '-U', '-f', 'qcow2', '-O', 'raw', image, out]);
  return out;
}

/** Sets the RAM migration capabilities and parameters both methods share, on one QEMU (both sides need them). */
async function setRamSettings(q: QmpClient, o: VmRigOptions): Promise<void> {
  if (o.ram !== 'multifd-zstd') return;
  await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'multifd', state: true }] });
  await q.execute('migrate-set-parameters', { 'multifd-channels': 4, 'multifd-compression': 'zstd' });
}

/** `n` distinct free loopback ports (held open together, so they differ, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<net.Server>((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export function linkBytes(p: WanProxy): number {
  const s = p.stats();
  return s.forward.bytesOut + s.reverse.bytesOut;
}

async function md5Block(fh: Awaited<ReturnType<typeof open>>, block: number, bs: number): Promise<string> {
  const buf = Buffer.alloc(bs);
  await fh.read(buf, 0, bs, block * bs);
  return createHash('md5').update(buf).digest('hex');
}

/** Host-side check of the image the target VM uses: written blocks against the guest's log, the rest against the original. */
export async function hostCompare(image: string, original: string, log: Map<number, string>, size: number, bs: number): Promise<VmRigResult['host']> {
  const a = await open(image, 'r');
  const b = await open(original, 'r');
  let mismatches = 0;
  let first: string | null = null;
  let checkedWritten = 0;
  let checkedOther = 0;
  const ba = Buffer.alloc(bs);
  const bb = Buffer.alloc(bs);
  try {
    for (let blk = 0; blk < size / bs; blk++) {
      const want = log.get(blk);
      if (want) {
        checkedWritten++;
        const got = await md5Block(a, blk, bs);
        if (got !== want) {
          mismatches++;
          first ??= `block ${blk}: guest wrote md5 ${want}, image has ${got}`;
        }
      } else {
        checkedOther++;
        ba.fill(0);
        bb.fill(0);
        await a.read(ba, 0, bs, blk * bs);
        await b.read(bb, 0, bs, blk * bs);
        if (!ba.equals(bb)) {
          mismatches++;
          first ??= `block ${blk}: never written by the guest, but differs from the original image`;
        }
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
  return { checkedWritten, checkedOther, mismatches, firstMismatch: first };
}

/** Guest writes counted from PROGRESS lines (every 25 writes). */
function guestWrites(lines: string[]): number {
  let w = 0;
  for (const l of lines) {
    const m = /FLIMCD-GUEST PROGRESS writes=(\d+)/.exec(l);
    if (m) w = Number(m[1]);
  }
  return w;
}

async function prepareImages(o: VmRigOptions): Promise<{ original: string; vmDisk: string; base: string | undefined }> {
  if (o.images) {
    const vmDisk = join(o.dir, o.images.vm.format === 'qcow2' ? 'vm.qcow2' : 'vm.img');
    sparseCopy(o.images.vm.file, vmDisk);
    return { original: o.images.original, vmDisk, base: undefined };
  }
  const original = join(o.dir, 'original.img');
  const seed = o.seed ?? 7;
  let base: string | undefined;
  if (o.base) {
    base = join(o.dir, 'base.img');
    await generateImage(base, o.diskBytes, { seed });
    sparseCopy(base, original);
    // Per-VM changes: a share of the blocks rewritten with other content.
    const changes = join(o.dir, 'changes.img');
    await generateImage(changes, o.diskBytes, { seed: seed + 1000, mix: { zero: 0, duplicate: 0.1, text: 0.5 } });
    const fo = await open(original, 'r+');
    const fc = await open(changes, 'r');
    const buf = Buffer.alloc(BS);
    const n = o.diskBytes / BS;
    let x = seed;
    for (let blk = 0; blk < n; blk++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      if (x / 2 ** 31 < o.base.changedShare) {
        await fc.read(buf, 0, BS, blk * BS);
        await fo.write(buf, 0, BS, blk * BS);
      }
    }
    await fo.close();
    await fc.close();
  } else {
    await generateImage(original, o.diskBytes, { seed });
  }
  const vmDisk = join(o.dir, 'vm.img');
  sparseCopy(original, vmDisk);
  return { original, vmDisk, base };
}

/** Runs one whole-VM migration and the checks; always cleans up its processes. */
export async function runVmMigration(o: VmRigOptions): Promise<VmRigResult> {
  const initrd = join(o.dir, 'initrd.cpio');
  buildInitramfs(initrd, o.kernel, { files: o.guestFiles });
  const append = guestCmdline(o.workload ?? {});
  const { original, vmDisk, base } = await prepareImages(o);
  const cleanups: Array<() => unknown> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* best effort */
      }
    }
  };
  try {
    return o.method === 'flimcd' ? await runFlimcd(o, initrd, append, original, vmDisk, base, cleanups) : await runMirror(o, initrd, append, original, vmDisk, base, cleanups);
  } finally {
    await cleanup();
  }
}

/** Lets the guest write `writesAtTarget` more, tells it STOP, and collects its verdict and final log (vda's in `log`, every disk's in `logs`). */
export async function finishGuest(o: Pick<VmRigOptions, 'writesAtTarget'>, target: QemuGuest, fromLine: number): Promise<{ guest: VmRigResult['guest']; log: Map<number, string>; logs: Map<string, Map<number, string>>; stopSentAt: number }> {
  // Keep writing at the target for a while (post-copy may still run), then check.
  const want = o.writesAtTarget ?? 25;
  // (fromLine: only progress printed from there on counts as "at the target".)
  const at = guestWrites(target.serial.lines.slice(fromLine));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const now = guestWrites(target.serial.lines.slice(fromLine));
    if (now >= at + want && now > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  target.serial.send('STOP');
  const stopSentAt = Date.now();
  const m = await target.serial.waitFor(/FLIMCD-GUEST VERIFY (PASS|FAIL).*/, 120_000);
  const lines = target.serial.lines;
  const log = new Map<number, string>();
  const logs = new Map<string, Map<number, string>>([['vda', log]]);
  let inLog = false;
  for (const l of lines) {
    if (l.includes('FLIMCD-LOG-BEGIN')) inLog = true;
    else if (l.includes('FLIMCD-LOG-END')) inLog = false;
    else if (inLog) {
      // vda's lines carry no device name; the other disks' do.
      const x = /FLIMCD-LOG (?:(vd[a-z]) )?(\d+) (\S+)/.exec(l);
      if (x) {
        const dev = x[1] ?? 'vda';
        if (!logs.has(dev)) logs.set(dev, new Map());
        logs.get(dev)!.set(Number(x[2]), x[3]!);
      }
    }
  }
  const stopped = lines.map((l) => /FLIMCD-GUEST STOPPED writes=(\d+)/.exec(l)).find(Boolean);
  const firstAtTarget = lines.slice(fromLine).map((l) => /FLIMCD-GUEST PROGRESS writes=(\d+)/.exec(l)).find(Boolean);
  const writes = stopped ? Number(stopped[1]) : 0;
  return {
    guest: {
      verdict: m[1] as 'PASS' | 'FAIL', line: m[0], mismatches: lines.filter((l) => l.includes('FLIMCD-GUEST MISMATCH')), writes,
      writesAtTarget: firstAtTarget ? writes - Number(firstAtTarget[1]) + 25 : 0,
    },
    log,
    logs,
    stopSentAt,
  };
}

async function runFlimcd(o: VmRigOptions, initrd: string, append: string, original: string, vmDisk: string, base: string | undefined, cleanups: Array<() => unknown>): Promise<VmRigResult> {
  const d = o.dir;
  const targetBase = o.images?.targetBase;
  const sourceFormat = o.images?.vm.format ?? 'raw';
  // With a base at the target, the target agent writes a new qcow2 overlay on it (`--backing`).
  const targetImage = join(d, targetBase ? 'target.qcow2' : 'target.img');
  if (base) sparseCopy(base, targetImage);
  if (base && o.base?.indexAvailable) {
    // The target datacenter's replica index holds the base image.
    const baseAtTarget = join(d, 'base-at-target.img');
    sparseCopy(base, baseAtTarget);
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'flimcd.js'), 'index', 'add', '--index', join(d, 'index'), baseAtTarget], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new FlimcdError(`flimcd index add failed: ${r.stderr}`, ErrorCode.TEST);
  }
  let completeAt: number | undefined;
  // Both agents share an ephemeral PSK (the pair's default): the link is TLS as in production.
  const pair = await startAgentPair({
    sourceImage: vmDisk, targetImage, dir: d, algorithm: 'flimcd', blockSize: BS, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs, log: o.log,
    source: { manualCutover: true, format: sourceFormat },
    target: {
      // Every block is at the target when it starts its verification.
      onPhase: (p) => {
        if ((p === 'verify' || p === 'done') && completeAt === undefined) completeAt = Date.now();
      },
      ...(o.base?.indexAvailable ? { indexDir: join(d, 'index') } : {}),
      ...(targetBase ? { format: 'qcow2' as const, backing: { file: targetBase, format: 'qcow2' as const } } : {}),
    },
  });
  cleanups.push(() => pair.close());
  const { source, target } = pair;
  const diskWan = pair.wan;
  const sctl = new ControlServer({ address: { kind: 'unix', path: join(d, 's.ctl') }, control: { role: 'source', status: () => source.status(), cutover: (x) => source.cutover(x), abort: (r, x) => source.abort(r, x) } });
  // The stale-handover sabotage stands a stale export in for the target agent's: its status names that one.
  let staleExport: { address: Address; server: NbdServer } | undefined;
  const targetStatus = () => (staleExport ? { ...target.status(), nbd: formatAddress(staleExport.address), vmConnections: staleExport.server.connectionCount } : target.status());
  const tctl = new ControlServer({ address: { kind: 'unix', path: join(d, 't.ctl') }, control: { role: 'target', status: targetStatus, abort: (r) => target.abort(r) } });
  await sctl.listen();
  await tctl.listen();
  cleanups.push(() => sctl.close(), () => tctl.close());

  const src = await QemuGuest.start({ name: 'source', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes, disk: { addr: source.nbdAddress } });
  cleanups.push(() => src.stop());
  await src.serial.waitFor(/FLIMCD-GUEST READY/, 60_000);
  const readyAt = Date.now();
  await new Promise((r) => setTimeout(r, o.warmupMs ?? 2000));

  const t0 = Date.now();
  const migrating = source.migrate();
  migrating.catch(() => {});
  // The target export exists once the source has said HELLO.
  const deadline = Date.now() + 30_000;
  while (!target.nbdAddress) {
    if (Date.now() > deadline) throw new FlimcdError('the target agent never opened its VM export', ErrorCode.TIMEOUT);
    await new Promise((r) => setTimeout(r, 20));
  }
  let targetDisk: Address = target.nbdAddress;
  let staleGate: GateDisk | undefined;
  const staleImage = join(d, 'stale.img');
  if (o.sabotage === 'stale-handover') {
    writeFileSync(staleImage, '');
    truncateSync(staleImage, o.diskBytes);
    const fd = await FileDisk.open(staleImage, {});
    staleGate = new GateDisk(fd, 'held');
    const nbd = new NbdServer({ exports: [{ name: '', description: 'sabotaged target export', disk: staleGate }], log: o.log.child({ component: 'stale-nbd' }) });
    targetDisk = await nbd.listen({ kind: 'unix', path: join(d, 'stale.nbd') });
    staleExport = { address: targetDisk, server: nbd };
    cleanups.push(async () => {
      await nbd.close();
      await fd.close();
    });
  }
  const dst = await QemuGuest.start({ name: 'target', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes, disk: { addr: targetDisk }, incoming: 'defer' });
  cleanups.push(() => dst.stop());

  const [ramPort, ramWanPort, deadPort] = (await freePorts(3)) as [number, number, number];
  const ramWan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: ramWanPort }, to: { kind: 'tcp', host: '127.0.0.1', port: ramPort }, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
  cleanups.push(() => ramWan.close());
  const ramWanAddr = (await ramWan.listen()) as { host: string; port: number };
  await setRamSettings(src.qmp, o);
  await setRamSettings(dst.qmp, o);
  // Leave the QMP connections to migrateVm, as `flimcd vm migrate` would find them.
  src.qmp.close();
  dst.qmp.close();

  const migrateVmAt = Date.now();
  const migration = migrateVm({
    sourceQmp: { kind: 'unix', path: src.qmpPath },
    targetQmp: { kind: 'unix', path: dst.qmpPath },
    sourceControl: sctl.address!,
    targetControl: tctl.address!,
    incomingUri: `tcp:127.0.0.1:${ramPort}`,
    migrateUri: o.failAt === 'ram-link' ? `tcp:127.0.0.1:${deadPort}` : `tcp:${ramWanAddr.host}:${ramWanAddr.port}`,
    ramMaxBandwidth: o.ramMaxBandwidth ?? o.bandwidthBps / 8 * 2,
    ...(o.ramStart ? { ramStart: o.ramStart } : {}),
    log: o.log.child({ component: 'vm-migrate' }),
    onProgress: o.onProgress,
    hooks: {
      beforeRam: () => {
        if (o.sabotage === 'stale-handover') sparseCopy(targetImage, staleImage);
      },
      atSwitchover: () => {
        staleGate?.open();
        if (o.failAt === 'after-storage-cutover') throw new FlimcdError('injected failure after the storage cut-over', ErrorCode.TEST);
      },
    },
  });
  if (o.failAt) {
    const err = await migration.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    if (!(err instanceof VmMigrationError)) throw err ?? new FlimcdError('the injected failure did not fail the migration', ErrorCode.TEST);
    const t1 = Date.now();
    const q = await QmpClient.connect({ kind: 'unix', path: src.qmpPath }, { name: 'source QEMU' });
    const sourceStatus = (await q.execute<{ status: string }>('query-status')).status;
    q.close();
    // A target QEMU whose incoming migration failed may have exited (QEMU quits on a failed load): it does not run the VM either.
    const targetStatus = await (async () => {
      const q2 = await QmpClient.connect({ kind: 'unix', path: dst.qmpPath }, { name: 'target QEMU' });
      try {
        return (await q2.execute<{ status: string }>('query-status')).status;
      } finally {
        q2.close();
      }
    })().catch(() => (dst.running ? 'unreachable' : 'exited'));
    await migrating.catch(() => {});
    // The guest keeps writing at the source, then checks everything there.
    const { guest, log } = await finishGuest(o, src, src.serial.lines.length);
    const host = await hostCompare(vmDisk, original, log, o.diskBytes, BS);
    return {
      method: 'flimcd', guest, host, time_total_s: (t1 - t0) / 1000, downtime_ms: 0,
      wire_bytes: linkBytes(diskWan) + linkBytes(ramWan), wire_bytes_disk_link: linkBytes(diskWan), wire_bytes_ram_link: linkBytes(ramWan),
      vm: null, flimcd: null, peer: null,
      failure: { message: err.message, code: err.code, vmAt: err.vmAt, sourceStatus, targetStatus },
      serialTail: src.serial.lines.slice(-20),
    };
  }
  const vm = await migration;
  const report = await migrating;
  const t1 = Date.now();
  // migrateVm's own clock starts at its call; the VM ran at the target when its RAM stage ended.
  const timeToSwitchS = (migrateVmAt - t0) / 1000 + vm.time_total_s - vm.time_postcopy_s;
  const fromLine = dst.serial.lines.length;
  const { guest, log, stopSentAt } = await finishGuest(o, dst, 0);
  void fromLine;
  const guestWriteBps = (guest.writes * (o.workload?.bs ?? BS)) / ((stopSentAt - readyAt) / 1000);
  // The host reads the image file: stop its writers first, so everything they hold is on disk.
  await dst.stop();
  await pair.close();
  const host = await hostCompare(o.sabotage ? staleImage : toRaw(targetImage, targetBase ? 'qcow2' : 'raw', join(d, 'target-view.raw')), original, log, o.diskBytes, BS);
  // Every block at the target: the later of the switch (nothing missing then) and the post-copy's last block.
  const allThereS = Math.max(timeToSwitchS, ((completeAt ?? t1) - t0) / 1000);
  return {
    method: 'flimcd',
    guest,
    host,
    time_total_s: allThereS,
    verify_s: Math.max(0, (t1 - t0) / 1000 - allThereS),
    time_to_switch_s: timeToSwitchS,
    downtime_ms: vm.downtime_ms,
    wire_bytes: linkBytes(diskWan) + linkBytes(ramWan),
    wire_bytes_disk_link: linkBytes(diskWan),
    wire_bytes_ram_link: linkBytes(ramWan),
    vm,
    flimcd: report,
    peer: null,
    guest_write_Bps: guestWriteBps,
    failure: null,
    serialTail: dst.serial.lines.slice(-20),
  };
}

async function runMirror(o: VmRigOptions, initrd: string, append: string, original: string, vmDisk: string, base: string | undefined, cleanups: Array<() => unknown>): Promise<VmRigResult> {
  const d = o.dir;
  const targetBase = o.images?.targetBase;
  const sourceFormat = o.images?.vm.format ?? 'raw';
  // With a base at the target: a new overlay on it, and the mirror copies only the source's top layer (sync=top).
  const targetImage = join(d, targetBase ? 'target.qcow2' : 'target.img');
  if (targetBase) createOverlay(targetImage, targetBase);
  else if (base) sparseCopy(base, targetImage);
  else {
    writeFileSync(targetImage, '');
    truncateSync(targetImage, o.diskBytes);
  }
  const src = await QemuGuest.start({ name: 'source', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes, disk: { file: vmDisk, format: sourceFormat } });
  cleanups.push(() => src.stop());
  await src.serial.waitFor(/FLIMCD-GUEST READY/, 60_000);
  const readyAt = Date.now();
  await new Promise((r) => setTimeout(r, o.warmupMs ?? 2000));
  // detect-zeroes=unmap: zero regions the mirror writes become holes at the target.
  const dst = await QemuGuest.start({
    name: 'target', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes,
    disk: { file: targetImage, format: targetBase ? 'qcow2' : 'raw', detectZeroes: 'unmap' }, incoming: 'defer',
  });
  cleanups.push(() => dst.stop());
  const [nbdPort, ramPort, diskWanPort, ramWanPort] = (await freePorts(4)) as [number, number, number, number];
  const diskWan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: diskWanPort }, to: { kind: 'tcp', host: '127.0.0.1', port: nbdPort }, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
  const ramWan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: ramWanPort }, to: { kind: 'tcp', host: '127.0.0.1', port: ramPort }, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
  cleanups.push(() => diskWan.close(), () => ramWan.close());
  const diskWanAddr = (await diskWan.listen()) as { host: string; port: number };
  const ramWanAddr = (await ramWan.listen()) as { host: string; port: number };
  const S = src.qmp;
  const D = dst.qmp;
  const poll = (ms: number) => new Promise((r) => setTimeout(r, ms));

  await setRamSettings(S, o);
  await setRamSettings(D, o);
  const t0 = Date.now();
  // 1. Target: NBD export of its disk, incoming RAM.
  await D.execute('nbd-server-start', { addr: { type: 'inet', data: { host: '127.0.0.1', port: String(nbdPort) } } });
  await D.execute('block-export-add', { type: 'nbd', id: 'mig0', 'node-name': 'disk0', name: 'disk0', writable: true });
  await D.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${ramPort}` });
  // 2. Source: mirror into it through the disk link.
  await S.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: true }, { capability: 'events', state: true }] });
  await S.execute('migrate-set-parameters', { 'max-bandwidth': Math.round(o.ramMaxBandwidth ?? (o.bandwidthBps / 8) * 2) });
  await S.execute('blockdev-add', { driver: 'nbd', 'node-name': 'mig-target', server: { type: 'inet', host: diskWanAddr.host, port: String(diskWanAddr.port) }, export: 'disk0' });
  // write-blocking (libvirt's --copy-storage-synchronous-writes): guest writes go to both sides, so
  // the mirror converges. In the default background mode it chases this workload's writes through
  // a WAN-like RTT for minutes, sending the disk several times over, which would make the comparison
  // about a non-converging peer (`--mirror-mode background` measures it; docs/qemu.md).
  await S.execute('blockdev-mirror', {
    'job-id': 'mirror0', device: 'disk0', target: 'mig-target', sync: targetBase ? 'top' : 'full', 'copy-mode': o.mirrorCopyMode ?? 'write-blocking',
    ...(o.mirrorTuning?.granularity ? { granularity: o.mirrorTuning.granularity } : {}),
    ...(o.mirrorTuning?.bufSize ? { 'buf-size': o.mirrorTuning.bufSize } : {}),
  });
  // Bounded: ten times the time the link needs for the whole disk, at least two minutes.
  const readyDeadline = Date.now() + Math.max(120_000, ((o.diskBytes * 8) / o.bandwidthBps) * 10_000);
  for (;;) {
    const jobs = await S.execute<Array<{ device: string; ready: boolean; offset: number; len: number }>>('query-block-jobs');
    const j = jobs.find((x) => x.device === 'mirror0');
    if (!j) throw new FlimcdError('the mirror job vanished', ErrorCode.QEMU);
    if (j.ready) break;
    if (Date.now() > readyDeadline) {
      const ws = { disk: diskWan.stats(), ram: ramWan.stats() };
      throw new FlimcdError(`mirror not ready in time (job at ${j.offset} of ${j.len}; disk link forward held ${ws.disk.forward.heldBytes} B, buffered ${ws.disk.buffered.forward} B, connections ${ws.disk.connections.active})`, ErrorCode.TIMEOUT);
    }
    await poll(100);
  }
  const mirrorReady = Date.now();
  // 3. RAM, pause before the switch-over, complete the mirror there.
  const srcSince = S.lastEventSeq;
  const dstSince = D.lastEventSeq;
  await S.execute('migrate', { uri: `tcp:${ramWanAddr.host}:${ramWanAddr.port}` });
  for (;;) {
    const q = await S.execute<{ status: string; 'error-desc'?: string }>('query-migrate');
    if (q.status === 'pre-switchover') break;
    if (q.status === 'failed' || q.status === 'cancelled') throw new FlimcdError(`RAM migration ${q.status}: ${q['error-desc'] ?? ''}`, ErrorCode.QEMU);
    await poll(50);
  }
  const jobSince = S.lastEventSeq;
  await S.execute('block-job-cancel', { device: 'mirror0' });
  await S.waitEvent('BLOCK_JOB_COMPLETED', { since: jobSince, timeoutMs: 120_000, match: (x) => x.device === 'mirror0' });
  await S.execute('migrate-continue', { state: 'pre-switchover' });
  let downtimeQemu: number | undefined;
  for (;;) {
    const q = await S.execute<{ status: string; downtime?: number }>('query-migrate');
    if (q.status === 'completed') {
      downtimeQemu = q.downtime;
      break;
    }
    if (q.status === 'failed' || q.status === 'cancelled') throw new FlimcdError(`RAM migration ${q.status}`, ErrorCode.QEMU);
    await poll(20);
  }
  void downtimeQemu;
  // 4. Target loaded: run it at once (as migrateVm does), then remove the export.
  for (;;) {
    const s = await D.execute<{ status: string }>('query-status');
    if (s.status !== 'inmigrate') break;
    await poll(20);
  }
  const st = await D.execute<{ status: string }>('query-status');
  if (st.status !== 'running') await D.execute('cont');
  const resumed = await D.waitEvent('RESUME', { since: dstSince, timeoutMs: 10_000 });
  const stopped = await S.waitEvent('STOP', { since: srcSince, timeoutMs: 1000 });
  const t1 = Date.now();
  await S.execute('blockdev-del', { 'node-name': 'mig-target' }).catch(() => {});
  await D.execute('block-export-del', { id: 'mig0', mode: 'hard' });
  await D.execute('nbd-server-stop');
  const { guest, log, stopSentAt } = await finishGuest(o, dst, 0);
  const guestWriteBps = (guest.writes * (o.workload?.bs ?? BS)) / ((stopSentAt - readyAt) / 1000);
  // The host reads the image file: stop the target QEMU first, so what it holds is on disk.
  await dst.stop();
  const host = await hostCompare(toRaw(targetImage, targetBase ? 'qcow2' : 'raw', join(d, 'target-view.raw')), original, log, o.diskBytes, BS);
  return {
    method: 'qemu-mirror',
    guest,
    host,
    // Every block is at the target when the VM runs there: both times are the same.
    time_total_s: (t1 - t0) / 1000,
    time_to_switch_s: (t1 - t0) / 1000,
    downtime_ms: Math.round((resumed.timeMs - stopped.timeMs) * 10) / 10,
    wire_bytes: linkBytes(diskWan) + linkBytes(ramWan),
    wire_bytes_disk_link: linkBytes(diskWan),
    wire_bytes_ram_link: linkBytes(ramWan),
    vm: null,
    flimcd: null,
    peer: { mirror_ready_s: (mirrorReady - t0) / 1000, ram_s: (t1 - mirrorReady) / 1000 },
    guest_write_Bps: guestWriteBps,
    failure: null,
    serialTail: dst.serial.lines.slice(-20),
  };
}

