/**
 * A two-disk VM migration on this machine, for test/vm/vm-two-disks.test.ts:
 * one QEMU guest (TCG) with `vda` a raw file and `vdb` a qcow2 overlay on a
 * base the target already holds, its workload (guest.ts, flimcd.disks=2)
 * writing to both. One agent pair per disk (flimcd `vm migrate`'s model,
 * src/qemu/disk-set.ts), both pairs' links through one emulated WAN
 * (WanProxy.addRoute), then `migrateVm` with both disks.
 *
 * Checks afterwards: the guest re-reads every block it wrote on both disks;
 * the host compares each image the VM ends on with the guest's log (written
 * blocks) and the original (the rest), the qcow2 through `qemu-img convert`
 * after `qemu-img check`. With `failAt` one disk's target agent dies before
 * the RAM migration: both disks must roll back, the VM keep running at the
 * source with both disks intact.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Logger } from 'pino';
import { buildInitramfs, guestCmdline, type GuestKernel } from './guest.ts';
import { finishGuest, freePorts, hostCompare, linkBytes, type VmRigResult } from './rig.ts';
import { QemuGuest, nbdBlockdev, chsGeometry } from '../../src/qemu/process.ts';
import { migrateVm, VmMigrationError, type VmMigrationResult, type VmProgress } from '../../src/qemu/vm-migrate.ts';
import { QmpClient } from '../../src/qemu/qmp.ts';
import { SourceAgent } from '../../src/migrate/source-agent.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { ControlServer } from '../../src/control/server.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { resolveFeatures } from '../../src/policy/algorithm.ts';
import { ephemeralPsk } from '../../src/wire/secure-link.ts';
import type { MigrationReport } from '../../src/migrate/report.ts';
import type { ImageFormat } from '../../src/image/image-spec.ts';
import { ErrorCode, FlimcdError } from '../../src/errors.ts';

const BS = 65536;
const DISKS = ['vda', 'vdb'] as const;
type Dev = (typeof DISKS)[number];

export interface TwoDiskRigOptions {
  dir: string;
  kernel: GuestKernel;
  /** Each disk's size. */
  diskBytes: number;
  memMiB?: number;
  /** The one link both disks' agent pairs share; each source agent paces at this rate. */
  bandwidthBps: number;
  rttMs: number;
  warmupMs?: number;
  writesAtTarget?: number;
  /** `target-agent-vdb`: vdb's target agent stops just before the RAM migration starts. */
  failAt?: 'target-agent-vdb';
  log: Logger;
  onProgress?: (p: VmProgress) => void;
}

export interface TwoDiskRigResult {
  guest: VmRigResult['guest'];
  /** Host comparison of each disk the VM ends on (at the target, or at the source after a rollback). */
  host: Record<Dev, VmRigResult['host']>;
  /** `qemu-img check` of the qcow2 the VM ends on, and its backing file. */
  qcow2: { checkOk: boolean; checkOutput: string; backing: string | null };
  vm: VmMigrationResult | null;
  /** Each source agent's report (success only). */
  reports: Record<Dev, MigrationReport> | null;
  wire_bytes_disk_link: number;
  failure: { message: string; code: string; vmAt: string; sourceStatus: string; targetStatus: string } | null;
  serialTail: string[];
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new FlimcdError(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`, ErrorCode.TEST);
  return r.stdout;
}

/** vda: raw; vdb: a qcow2 overlay (with changes of its own) on a qcow2 base, a copy of which the target holds. */
async function prepareImages(o: TwoDiskRigOptions) {
  const d = o.dir;
  const p = (f: string) => join(d, f);
  await generateImage(p('original-vda.img'), o.diskBytes, { seed: 7 });
  copyFileSync(p('original-vda.img'), p('vda.img'));
  await generateImage(p('base.raw'), o.diskBytes, { seed: 8 });
  run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', p('base.raw'), p('base.qcow2')]);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', p('base.qcow2'), '-F', 'qcow2', p('vdb.qcow2')]);
  // The VM's own changes in the overlay, before the migration.
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 1M 2M', '-c', `write -P 0x44 ${Math.floor(o.diskBytes / 2 / BS) * BS} 1M`, '-c', 'write -z 8M 1M', p('vdb.qcow2')]);
  run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', p('vdb.qcow2'), p('original-vdb.img')]);
  copyFileSync(p('base.qcow2'), p('base-at-target.qcow2'));
  return {
    source: { vda: { image: p('vda.img'), format: 'raw' as ImageFormat }, vdb: { image: p('vdb.qcow2'), format: 'qcow2' as ImageFormat } },
    target: { vda: p('target-vda.img'), vdb: p('target-vdb.qcow2') },
    original: { vda: p('original-vda.img'), vdb: p('original-vdb.img') },
  };
}

/** The qcow2 as a raw file for the host comparison (the agents and QEMUs are gone by then). */
function qcow2AsRaw(file: string, out: string): string {
  run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', file, out]);
  return out;
}

function qcow2Check(file: string): TwoDiskRigResult['qcow2'] {
  const r = spawnSync('qemu-img', ['check', '-f', 'qcow2', file], { encoding: 'utf8', timeout: 60_000 });
  const info = spawnSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8', timeout: 60_000 });
  const backing = info.status === 0 ? ((JSON.parse(info.stdout) as { 'backing-filename'?: string })['backing-filename'] ?? null) : null;
  return { checkOk: r.status === 0, checkOutput: (r.stdout + r.stderr).trim(), backing };
}

export async function runTwoDiskMigration(o: TwoDiskRigOptions): Promise<TwoDiskRigResult> {
  const cleanups: Array<() => unknown> = [];
  try {
    return await migrate(o, cleanups);
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* best effort */
      }
    }
  }
}

async function migrate(o: TwoDiskRigOptions, cleanups: Array<() => unknown>): Promise<TwoDiskRigResult> {
  const d = o.dir;
  const initrd = join(d, 'initrd.cpio');
  buildInitramfs(initrd, o.kernel);
  const append = guestCmdline({ disks: 2 });
  const img = await prepareImages(o);
  const security = ephemeralPsk();
  const log = o.log;

  // Targets first, then one WAN with an entrance per disk, then the sources.
  const targets = {} as Record<Dev, TargetAgent>;
  for (const dev of DISKS) {
    targets[dev] = new TargetAgent({
      image: img.target[dev], security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(d, `target-${dev}.sock`) },
      log: log.child({ agent: 'target', disk: dev }),
      ...(dev === 'vdb' ? { backing: { file: join(d, 'base-at-target.qcow2'), format: 'qcow2' as ImageFormat } } : {}),
    });
    const t = targets[dev];
    cleanups.push(() => t.close());
  }
  const links = { vda: await targets.vda.listen(), vdb: await targets.vdb.listen() };
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: links.vda, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
  cleanups.push(() => wan.close());
  const via = { vda: await wan.listen(), vdb: await wan.addRoute({ kind: 'tcp', host: '127.0.0.1', port: 0 }, links.vdb) };
  const sources = {} as Record<Dev, SourceAgent>;
  for (const dev of DISKS) {
    sources[dev] = await SourceAgent.start({
      image: img.source[dev].image, format: img.source[dev].format, security, nbd: { kind: 'unix', path: join(d, `source-${dev}.sock`) }, to: via[dev],
      algorithm: 'flimcd', blockSize: BS, bandwidthBps: o.bandwidthBps, features: resolveFeatures('flimcd'), manualCutover: true, log: log.child({ agent: 'source', disk: dev }),
    });
    const s = sources[dev];
    cleanups.push(() => s.close());
  }
  const controls = {} as Record<Dev, { s: ControlServer; t: ControlServer }>;
  for (const dev of DISKS) {
    const source = sources[dev];
    const target = targets[dev];
    const s = new ControlServer({ address: { kind: 'unix', path: join(d, `s-${dev}.ctl`) }, control: { role: 'source', status: () => source.status(), cutover: (x) => source.cutover(x), abort: (r, x) => source.abort(r, x) } });
    const t = new ControlServer({ address: { kind: 'unix', path: join(d, `t-${dev}.ctl`) }, control: { role: 'target', status: () => target.status(), abort: (r) => target.abort(r) } });
    await s.listen();
    await t.listen();
    cleanups.push(() => s.close(), () => t.close());
    controls[dev] = { s, t };
  }

  const secondDisk = (addr: Parameters<typeof nbdBlockdev>[0]) => ['-blockdev', nbdBlockdev(addr, 'disk1'), '-device', `virtio-blk-pci,drive=disk1,id=vd1,addr=0x5,${chsGeometry(o.diskBytes)}`];
  const src = await QemuGuest.start({
    name: 'source', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes, disk: { addr: sources.vda.nbdAddress }, extraArgs: secondDisk(sources.vdb.nbdAddress),
  });
  cleanups.push(() => src.stop());
  await src.serial.waitFor(/FLIMCD-GUEST READY/, 120_000);
  await new Promise((r) => setTimeout(r, o.warmupMs ?? 2000));

  const migrating = { vda: sources.vda.migrate(), vdb: sources.vdb.migrate() };
  for (const m of Object.values(migrating)) m.catch(() => {});
  const deadline = Date.now() + 60_000;
  while (!targets.vda.nbdAddress || !targets.vdb.nbdAddress) {
    if (Date.now() > deadline) throw new FlimcdError('a target agent never opened its VM export', ErrorCode.TIMEOUT);
    await new Promise((r) => setTimeout(r, 20));
  }
  const dst = await QemuGuest.start({
    name: 'target', dir: d, kernel: o.kernel.vmlinuz, initrd, append, memMiB: o.memMiB, diskBytes: o.diskBytes, disk: { addr: targets.vda.nbdAddress }, extraArgs: secondDisk(targets.vdb.nbdAddress), incoming: 'defer',
  });
  cleanups.push(() => dst.stop());
  const [ramPort] = (await freePorts(1)) as [number];
  src.qmp.close();
  dst.qmp.close();

  const migration = migrateVm({
    sourceQmp: { kind: 'unix', path: src.qmpPath },
    targetQmp: { kind: 'unix', path: dst.qmpPath },
    disks: DISKS.map((dev) => ({ name: dev, sourceControl: controls[dev].s.address!, targetControl: controls[dev].t.address! })),
    incomingUri: `tcp:127.0.0.1:${ramPort}`,
    ramMaxBandwidth: (o.bandwidthBps / 8) * 2,
    log: log.child({ component: 'vm-migrate' }),
    onProgress: o.onProgress,
    hooks: {
      beforeRam: async () => {
        if (o.failAt !== 'target-agent-vdb') return;
        // One disk's target agent dies (as a crashed process would: its control endpoint goes too).
        await controls.vdb.t.close();
        await targets.vdb.close();
      },
    },
  });

  if (o.failAt) {
    const err = await migration.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    if (!(err instanceof VmMigrationError)) throw err ?? new FlimcdError('the injected failure did not fail the migration', ErrorCode.TEST);
    const status = async (path: string) => {
      const q = await QmpClient.connect({ kind: 'unix', path }, { name: 'QEMU' });
      try {
        return (await q.execute<{ status: string }>('query-status')).status;
      } finally {
        q.close();
      }
    };
    const sourceStatus = await status(src.qmpPath);
    // The target QEMU may have quit when vdb's export vanished under it: then it does not run the VM either.
    const targetStatus = await status(dst.qmpPath).catch(() => (dst.running ? 'unreachable' : 'exited'));
    const { guest, logs } = await finishGuest(o, src, src.serial.lines.length);
    const serialTail = src.serial.lines.slice(-20);
    const wire = linkBytes(wan);
    // The images the VM still uses at the source, compared once nothing holds them.
    await src.stop();
    await sources.vda.close();
    await sources.vdb.close();
    const qcow2 = qcow2Check(img.source.vdb.image);
    const host = {
      vda: await hostCompare(img.source.vda.image, img.original.vda, logs.get('vda') ?? new Map<number, string>(), o.diskBytes, BS),
      vdb: await hostCompare(qcow2AsRaw(img.source.vdb.image, join(d, 'vdb-after.img')), img.original.vdb, logs.get('vdb') ?? new Map<number, string>(), o.diskBytes, BS),
    };
    return { guest, host, qcow2, vm: null, reports: null, wire_bytes_disk_link: wire, failure: { message: err.message, code: err.code, vmAt: err.vmAt, sourceStatus, targetStatus }, serialTail };
  }

  const vm = await migration;
  const reports = { vda: await migrating.vda, vdb: await migrating.vdb };
  const { guest, logs } = await finishGuest(o, dst, 0);
  const serialTail = dst.serial.lines.slice(-20);
  const wire = linkBytes(wan);
  await dst.stop();
  await targets.vda.close();
  await targets.vdb.close();
  if (!existsSync(img.target.vdb)) throw new FlimcdError(`${img.target.vdb} was not created`, ErrorCode.TEST);
  const qcow2 = qcow2Check(img.target.vdb);
  const host = {
    vda: await hostCompare(img.target.vda, img.original.vda, logs.get('vda') ?? new Map<number, string>(), o.diskBytes, BS),
    vdb: await hostCompare(qcow2AsRaw(img.target.vdb, join(d, 'target-vdb-as.img')), img.original.vdb, logs.get('vdb') ?? new Map<number, string>(), o.diskBytes, BS),
  };
  return { guest, host, qcow2, vm, reports, wire_bytes_disk_link: wire, failure: null, serialTail };
}
