/**
 * Whole-VM live migration of a QEMU guest whose disk is served by flimcd:
 * flimcd moves the disk, QEMU moves RAM and device state, and the storage
 * cut-over happens inside QEMU's switch-over, while the VM is paused.
 *
 * Preconditions (what `flimcd vm migrate --help` tells the operator):
 * - source QEMU runs with its disk on the flimcd source agent's export
 *   (`-blockdev driver=nbd,…`), the agent started with `--manual-cutover`;
 * - the target agent runs, and the target QEMU was started with
 *   `-incoming defer` and its disk on the target agent's export (which
 *   listens once the source agent has connected, and holds I/O until cut-over).
 *
 * QMP sequence:
 *  1. wait until flimcd's pre-copy converged: first pass done and the dirty
 *     set small (≤ `precopyThresholdBytes`), or `precopyTimeoutMs` passed;
 *     with `ramStart: 'overlap'`, only until the pre-copy is due to end within
 *     the RAM migration's estimated time (ram-start.ts);
 *  2. target: `migrate-incoming {uri}`;
 *     source: `migrate-set-capabilities` pause-before-switchover (+ `events`),
 *     optional `migrate-set-parameters {max-bandwidth}`, `migrate {uri}`;
 *  3. poll `query-migrate` (RAM progress) until `pre-switchover`: QEMU has
 *     stopped the guest and drained and flushed its disk I/O;
 *  4. storage cut-over: `POST /cutover` to the source agent, then wait until
 *     the target agent serves (phase postcopy, verify or done);
 *  5. source: `migrate-continue {state: pre-switchover}`; poll until
 *     `completed`; target: wait until `query-status` leaves `inmigrate`,
 *     `cont` if it is paused;
 *  6. post-copy carries on while the VM runs at the target; wait until the
 *     target agent reports `done` (and `verified`).
 *
 * Several disks (`disks`): one agent pair per disk, driven as one set
 * (disk-set.ts): pre-copy converged when every disk is, one cut-over for all
 * inside the same switch-over pause (every source agent cut over, every
 * target agent serving, then `migrate-continue`), post-copy until every
 * target agent is done; a failure of any disk before the VM runs at the
 * target rolls all of them back.
 *
 * Failure before step 5 completes leaves the VM at the source: `migrate_cancel`,
 * both agents aborted (the source with `reclaim` once its disk was handed over:
 * the target VM never ran, so the source image is still current), and `cont`
 * at the source if it is still paused. A failure after the VM runs at the
 * target cannot be rolled back and is reported as such.
 */
import type { Logger } from 'pino';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';
import { ErrorCode, FlimcdError, QmpError, UsageError } from '../errors.ts';
import { ChangedMigrationSettings } from './ram-settings.ts';
import { GuestIoErrorWatch, type GuestIoErrors } from './guest-io-errors.ts';
import { checkTargetAttached } from './target-attach.ts';
import { RamConvergenceWatch, type RamFigures } from './ram-convergence.ts';
import { overlapStartsRam, PrecopyPace, ramSecondsEstimate, type RamStart } from './ram-start.ts';
import { DiskSet, finiteOrNull, remainingBytes, sumField, totalStatus, SERVING_PHASES, type DiskEndpoints, type DiskStatus } from './disk-set.ts';

export interface VmMigrateOptions {
  sourceQmp: Address;
  targetQmp: Address;
  /** The one disk's agents (single-disk form; or `disks`). */
  sourceControl?: Address;
  targetControl?: Address;
  /** Several disks of the VM, each with its own agent pair (or `sourceControl`/`targetControl` for one). */
  disks?: DiskEndpoints[];
  /** Where the target QEMU listens for the RAM stream (`migrate-incoming`), e.g. tcp:0.0.0.0:4444. */
  incomingUri: string;
  /** Where the source QEMU sends it (default `incomingUri`): e.g. through a WAN link. */
  migrateUri?: string;
  /** QEMU's RAM migration bandwidth limit, bytes/s (`max-bandwidth`; set back afterwards); QEMU 7.2's default is 128 MiB/s. */
  ramMaxBandwidth?: number;
  /** Start the RAM migration once the disks' dirty sets together are at most this (default 8 MiB or 1 s of link). */
  precopyThresholdBytes?: number;
  /** When the RAM migration starts (ram-start.ts): `converged` (default) after the disks' pre-copy, `overlap` so that both end together. */
  ramStart?: RamStart;
  /** Start the RAM migration anyway after this long (default 30 min): post-copy moves the rest. */
  precopyTimeoutMs?: number;
  /** RAM migration up to the switch-over (default 30 min); past it the migration rolls back. */
  ramTimeoutMs?: number;
  /** Storage cut-over (default 60 s). */
  cutoverTimeoutMs?: number;
  /** Post-copy to the verified end (default 2 h). 0: return once the VM runs at the target. */
  postcopyTimeoutMs?: number;
  pollMs?: number;
  /** Aborting it (e.g. on SIGINT) rolls the migration back while that is still possible. */
  signal?: AbortSignal;
  log?: Logger;
  onProgress?: (p: VmProgress) => void;
  /** Test hooks. */
  hooks?: {
    /** Just before the RAM migration starts. */
    beforeRam?: () => Promise<void> | void;
    /** After the storage cut-over, before `migrate-continue`. */
    atSwitchover?: () => Promise<void> | void;
  };
}

export type VmStage = 'precopy' | 'ram' | 'switchover' | 'postcopy' | 'done' | 'rollback' | 'failed';

export interface VmProgress {
  stage: VmStage;
  elapsedMs: number;
  /** All disks together (one disk: that disk). */
  disk: DiskProgress;
  /** Each disk. */
  disks: Array<DiskProgress & { name: string }>;
  ram: { status: string; transferred: number; total: number; remaining: number } | null;
}

export interface DiskProgress {
  phase: string;
  progress: number | null;
  remainingBlocks: number | null;
  blockSize: number | null;
  wireBytes: number | null;
}

/** One disk's part of the result. */
export interface VmDiskResult {
  name: string;
  /** The target agent's last status. */
  disk: Record<string, unknown>;
  missing_at_cutover: number | null;
  /** From the cut-over request until this disk's target agent was seen serving (the last disk's is storage_cutover_ms). */
  serving_after_ms: number | null;
  verified: boolean | null;
}

export interface VmMigrationResult {
  /** Start until every block is present at the target (or until the VM runs there with postcopyTimeoutMs 0). */
  time_total_s: number;
  /** Pre-copy before the RAM migration started. */
  time_precopy_s: number;
  /** RAM migration start to completion. */
  time_ram_s: number;
  /** Post-copy after the VM resumed at the target. */
  time_postcopy_s: number;
  /** Guest downtime: the source's STOP event to the target's RESUME event (host clock). */
  downtime_ms: number;
  /** QEMU's own `downtime` figure from query-migrate (source side). */
  qemu_downtime_ms: number | null;
  /** The storage cut-over inside the switch-over pause. */
  storage_cutover_ms: number;
  ram: { transferred_bytes: number; total_bytes: number; duplicate_pages: number; normal_pages: number; dirty_sync_count: number };
  /** The target agents' last status (phase, verified, counters), all disks together (one disk: its status). */
  disk: Record<string, unknown>;
  /** Blocks the targets lacked at cut-over (moved in post-copy), all disks. */
  missing_at_cutover: number | null;
  /** Every disk verified. */
  verified: boolean | null;
  /** I/O errors the guest saw on either QEMU during the migration: any makes it a failure. */
  guest_io_errors: GuestIoErrors;
  /** Each disk, in the order given. */
  disks: VmDiskResult[];
}

export class VmMigrationError extends FlimcdError {
  constructor(message: string, readonly vmAt: 'source' | 'target', options?: { cause?: unknown }) {
    super(message, vmAt === 'source' ? ErrorCode.VM_MIGRATION : ErrorCode.VM_POSTCOPY, options);
  }
}

/** A poll's wait; an aborted migration stops at the next one. */
const sleep = (ms: number, signal: AbortSignal | undefined) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new FlimcdError('interrupted', ErrorCode.INTERRUPTED));
    setTimeout(resolve, ms);
  });

/** A poll's wait that QEMU's MIGRATION event with `status` (since `since`) ends early. */
async function waitOrPoll(q: QmpClient, since: number, status: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) throw new FlimcdError('interrupted', ErrorCode.INTERRUPTED);
  // A timeout is the poll's normal end; a closed connection shows in the next command.
  await q.waitEvent('MIGRATION', { since, timeoutMs: ms, match: (d) => d.status === status }).catch(() => sleep(0, signal));
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  downtime?: number;
  'total-time'?: number;
  ram?: RamFigures & { transferred?: number; total?: number; remaining?: number; duplicate?: number; normal?: number; 'dirty-sync-count'?: number };
}

const diskProgress = (st: Record<string, unknown>): DiskProgress => ({
  phase: typeof st.phase === 'string' ? st.phase : 'unknown', progress: finiteOrNull(st.progress), remainingBlocks: finiteOrNull(st.remainingBlocks), blockSize: finiteOrNull(st.blockSize), wireBytes: finiteOrNull(st.wireBytes),
});

/** The disks of `o`: `disks`, or the single-disk form. */
export function diskEndpoints(o: Pick<VmMigrateOptions, 'disks' | 'sourceControl' | 'targetControl'>): DiskEndpoints[] {
  if (o.disks?.length) {
    if (o.sourceControl || o.targetControl) throw new UsageError('give either disks or sourceControl/targetControl, not both');
    return o.disks;
  }
  if (!o.sourceControl || !o.targetControl) throw new UsageError('no disk: give disks, or sourceControl and targetControl');
  return [{ name: 'disk0', sourceControl: o.sourceControl, targetControl: o.targetControl }];
}

/** Migrates the VM; see the module comment for the sequence and the failure semantics. */
export async function migrateVm(o: VmMigrateOptions): Promise<VmMigrationResult> {
  const log = o.log;
  const poll = o.pollMs ?? 50;
  const t0 = Date.now();
  let stage: VmStage = 'precopy';
  const disks = new DiskSet(diskEndpoints(o));
  let lastDisks: DiskStatus[] = [];
  let lastDisk: Record<string, unknown> = {};
  const see = (all: DiskStatus[]) => {
    lastDisks = all;
    lastDisk = totalStatus(all);
  };
  let lastRam: QueryMigrate | undefined;
  const progress = () => {
    if (!o.onProgress) return;
    const ram = lastRam?.ram;
    o.onProgress({
      stage,
      elapsedMs: Date.now() - t0,
      disk: diskProgress(lastDisk),
      disks: lastDisks.map((d) => ({ name: d.name, ...diskProgress(d.status) })),
      ram: lastRam ? { status: lastRam.status ?? 'none', transferred: ram?.transferred ?? 0, total: ram?.total ?? 0, remaining: ram?.remaining ?? 0 } : null,
    });
  };

  const src = await QmpClient.connect(o.sourceQmp, { name: 'source QEMU', connectTimeoutMs: 10_000, commandTimeoutMs: 30_000 });
  let dst: QmpClient | undefined;
  let ramStarted = false;
  let storageHandedOver = false;
  let vmAtTarget = false;
  let continueSent = false;
  let settings: ChangedMigrationSettings | undefined;
  let ioErrors: GuestIoErrorWatch | undefined;
  try {
    dst = await QmpClient.connect(o.targetQmp, { name: 'target QEMU', connectTimeoutMs: 10_000, commandTimeoutMs: 30_000 });
    ioErrors = await GuestIoErrorWatch.start(src, dst);
    const ss = await src.execute<{ status: string }>('query-status');
    if (ss.status !== 'running' && ss.status !== 'paused') throw new FlimcdError(`the source VM is ${ss.status}, not running`, ErrorCode.VM_STATE);
    const ds = await dst.execute<{ status: string }>('query-status');
    if (ds.status !== 'inmigrate') throw new FlimcdError(`the target QEMU is ${ds.status}; start it with -incoming defer`, ErrorCode.VM_STATE);

    // 1. Pre-copy until the dirty sets (all disks together) are small.
    const precopyDeadline = t0 + (o.precopyTimeoutMs ?? 30 * 60_000);
    const ramSeconds = o.ramStart === 'overlap' ? await ramSecondsEstimate(src, o.ramMaxBandwidth) : null;
    const pace = new PrecopyPace();
    for (;;) {
      see(await disks.sourceStatuses());
      progress();
      DiskSet.throwIfFailed(lastDisks, 'source', 'in pre-copy');
      const ahead = lastDisks.find((d) => d.status.phase !== 'starting' && d.status.phase !== 'precopy');
      if (ahead) throw new FlimcdError(`${disks.size > 1 ? `disk ${ahead.name}: ` : ''}the source agent is already in phase ${String(ahead.status.phase)}; start it with --manual-cutover`, ErrorCode.VM_STATE);
      const remaining = remainingBytes(lastDisks);
      // The disks share one link: one second of it is the largest link rate any agent sees.
      const rate = Math.max(0, ...lastDisks.map((d) => finiteOrNull(d.status.linkRateBps) ?? 0));
      const threshold = o.precopyThresholdBytes ?? Math.max(8 << 20, rate / 8);
      if (DiskSet.precopyConverged(lastDisks, threshold)) break;
      const secondsLeft = pace.secondsLeft(Date.now(), lastDisks);
      if (overlapStartsRam(secondsLeft, ramSeconds)) {
        log?.info({ precopySecondsLeft: secondsLeft, ramSeconds, remainingBytes: remaining }, 'starting the RAM migration beside the pre-copy (--ram-start overlap)');
        break;
      }
      if (Date.now() > precopyDeadline) {
        log?.warn({ remainingBytes: remaining }, 'pre-copy did not converge in time; moving on, post-copy carries the rest');
        break;
      }
      await sleep(Math.max(poll, 200), o.signal);
    }
    const precopyEnd = Date.now();

    // 2. RAM migration with a pause before the switch-over.
    await o.hooks?.beforeRam?.();
    stage = 'ram';
    for (const d of await disks.targetStatuses()) await checkTargetAttached(dst, d.status);
    await dst.execute('migrate-incoming', { uri: o.incomingUri });
    // Remembered as found, and set back at the end whatever happens.
    settings = await ChangedMigrationSettings.apply(src, {
      capabilities: { 'pause-before-switchover': true, events: true },
      parameters: o.ramMaxBandwidth ? { 'max-bandwidth': Math.round(o.ramMaxBandwidth) } : {},
    });
    const srcSince = src.lastEventSeq;
    const dstSince = dst.lastEventSeq;
    const ramStart = Date.now();
    await src.execute('migrate', { uri: o.migrateUri ?? o.incomingUri });
    ramStarted = true;
    log?.info({ uri: o.migrateUri ?? o.incomingUri }, 'RAM migration started');

    // 3. Until QEMU pauses before the switch-over.
    const ramDeadline = Date.now() + (o.ramTimeoutMs ?? 30 * 60_000);
    const convergence = new RamConvergenceWatch();
    let tick = 0;
    for (;;) {
      lastRam = await src.execute<QueryMigrate>('query-migrate');
      const st = lastRam.status;
      if (st === 'pre-switchover') break;
      if (st === 'failed' || st === 'cancelled' || st === 'cancelling' || st === 'completed' || !st) {
        throw new FlimcdError(`QEMU's RAM migration ended as ${st ?? 'nothing'}${lastRam['error-desc'] ? `: ${lastRam['error-desc']}` : ''}`, ErrorCode.VM_MIGRATION);
      }
      if (Date.now() > ramDeadline) throw new FlimcdError(`QEMU's RAM migration did not reach the switch-over within ${o.ramTimeoutMs ?? 30 * 60_000} ms (--ram-timeout)`, ErrorCode.VM_TIMEOUT);
      const stuck = convergence.observe(lastRam.ram);
      if (stuck) log?.warn(stuck, 'the RAM migration is not converging: the guest dirties memory about as fast as QEMU sends it; raise --ram-bandwidth, or --ram-timeout rolls back');
      if (tick++ % 10 === 0) {
        see(await disks.sourceStatuses());
        DiskSet.throwIfFailed(lastDisks, 'source', 'during the RAM migration');
      }
      progress();
      // QEMU pauses the guest at pre-switchover: from then on every ms is downtime, so its event
      // ends the wait at once rather than the next poll.
      await waitOrPoll(src, srcSince, 'pre-switchover', poll, o.signal);
    }

    // 4. Storage cut-over while the guest is paused and its disk quiet.
    stage = 'switchover';
    const swStart = Date.now();
    storageHandedOver = true;
    // Every disk at once, inside the one pause: one storage downtime for the VM.
    await disks.cutover();
    const servingAfter = new Map<string, number>();
    const cutDeadline = Date.now() + (o.cutoverTimeoutMs ?? 60_000);
    for (;;) {
      see(await disks.targetStatuses());
      for (const d of lastDisks) if (SERVING_PHASES.includes(String(d.status.phase)) && !servingAfter.has(d.name)) servingAfter.set(d.name, Date.now() - swStart);
      if (lastDisks.every((d) => SERVING_PHASES.includes(String(d.status.phase)))) break;
      DiskSet.throwIfFailed(lastDisks, 'target', 'during the storage cut-over');
      if (Date.now() > cutDeadline) {
        const late = lastDisks.filter((d) => !SERVING_PHASES.includes(String(d.status.phase))).map((d) => d.name);
        throw new FlimcdError(`the target agent${disks.size > 1 ? ` of disk ${late.join(', ')}` : ''} did not start serving within ${o.cutoverTimeoutMs ?? 60_000} ms of the cut-over`, ErrorCode.VM_TIMEOUT);
      }
      // The guest is paused: a status over the local control socket costs about a ms, a late look the whole gap.
      await sleep(Math.min(poll, 5), o.signal);
    }
    // The guest must find its disks at the target: the target QEMU's NBD nodes on the live target exports.
    for (const d of lastDisks) await checkTargetAttached(dst, d.status);
    const missingAtCutover = sumField(lastDisks, 'missingBlocks');
    const missingPerDisk = new Map(lastDisks.map((d) => [d.name, finiteOrNull(d.status.missingBlocks)]));
    const storageCutoverMs = Date.now() - swStart;
    log?.info({ storageCutoverMs, missingAtCutover }, 'storage cut over; continuing the switch-over');
    progress();
    await o.hooks?.atSwitchover?.();

    // 5. Switch-over.
    continueSent = true;
    await src.execute('migrate-continue', { state: 'pre-switchover' });
    for (;;) {
      lastRam = await src.execute<QueryMigrate>('query-migrate');
      if (lastRam.status === 'completed') break;
      if (lastRam.status === 'failed' || lastRam.status === 'cancelled') {
        throw new FlimcdError(`QEMU's migration failed at the switch-over${lastRam['error-desc'] ? `: ${lastRam['error-desc']}` : ''}`, ErrorCode.VM_MIGRATION);
      }
      if (Date.now() > ramDeadline) throw new FlimcdError('QEMU did not complete the switch-over in time', ErrorCode.VM_TIMEOUT);
      await sleep(Math.min(poll, 20), o.signal);
    }
    // Behind a buffering link the source says completed before the target has loaded.
    const loadDeadline = Date.now() + 120_000;
    for (;;) {
      const s = await dst.execute<{ status: string }>('query-status');
      if (s.status === 'running') break;
      if (s.status === 'paused' || s.status === 'prelaunch') {
        await dst.execute('cont');
        break;
      }
      if (s.status !== 'inmigrate') throw new FlimcdError(`the target VM is ${s.status} after the migration`, ErrorCode.VM_MIGRATION);
      if (Date.now() > loadDeadline) throw new FlimcdError('the target QEMU did not finish loading the VM state within 120 s', ErrorCode.VM_TIMEOUT);
      await sleep(Math.min(poll, 20), o.signal);
    }
    vmAtTarget = true;
    const resumed: QmpEvent = await dst.waitEvent('RESUME', { since: dstSince, timeoutMs: 10_000 });
    const stopped: QmpEvent = await src.waitEvent('STOP', { since: srcSince, timeoutMs: 1000 });
    const ramEnd = Date.now();
    const ramInfo = lastRam.ram ?? {};
    log?.info({ downtimeMs: Math.round(resumed.timeMs - stopped.timeMs) }, 'the VM runs at the target; post-copy carries on');

    // 6. Post-copy.
    stage = 'postcopy';
    const postDeadline = Date.now() + (o.postcopyTimeoutMs ?? 2 * 3600_000);
    if (o.postcopyTimeoutMs !== 0) {
      for (;;) {
        see(await disks.targetStatuses());
        progress();
        if (lastDisks.every((d) => d.status.phase === 'done')) break;
        const failed = lastDisks.find((d) => d.status.phase === 'failed');
        if (failed) throw new FlimcdError(`post-copy failed at the target agent${disks.size > 1 ? ` of disk ${failed.name}` : ''}`, ErrorCode.VM_POSTCOPY);
        if (Date.now() > postDeadline) throw new FlimcdError(`post-copy did not finish within ${o.postcopyTimeoutMs} ms`, ErrorCode.VM_TIMEOUT);
        await sleep(Math.max(poll, 100), o.signal);
      }
    }
    stage = o.postcopyTimeoutMs === 0 ? 'postcopy' : 'done';
    progress();
    const end = Date.now();
    await restoreSettings(settings, log);
    const guestIoErrors = await ioErrors.read();
    if (guestIoErrors.total > 0) log?.error({ ...guestIoErrors }, 'the guest saw I/O errors during the migration');
    return {
      time_total_s: (end - t0) / 1000,
      time_precopy_s: (precopyEnd - t0) / 1000,
      time_ram_s: (ramEnd - ramStart) / 1000,
      time_postcopy_s: (end - ramEnd) / 1000,
      downtime_ms: Math.round((resumed.timeMs - stopped.timeMs) * 10) / 10,
      qemu_downtime_ms: finiteOrNull(lastRam.downtime),
      storage_cutover_ms: storageCutoverMs,
      ram: {
        transferred_bytes: ramInfo.transferred ?? 0,
        total_bytes: ramInfo.total ?? 0,
        duplicate_pages: ramInfo.duplicate ?? 0,
        normal_pages: ramInfo.normal ?? 0,
        dirty_sync_count: ramInfo['dirty-sync-count'] ?? 0,
      },
      disk: lastDisk,
      missing_at_cutover: missingAtCutover,
      verified: typeof lastDisk.verified === 'boolean' ? lastDisk.verified : null,
      guest_io_errors: guestIoErrors,
      disks: lastDisks.map((d) => ({ name: d.name, disk: d.status, missing_at_cutover: missingPerDisk.get(d.name) ?? null, serving_after_ms: servingAfter.get(d.name) ?? null, verified: typeof d.status.verified === 'boolean' ? d.status.verified : null })),
    };
  } catch (e) {
    if (!vmAtTarget && continueSent) {
      // Past migrate-continue QEMU may have completed anyway: then the VM is at the target.
      const q = await src.execute<QueryMigrate>('query-migrate', undefined, { timeoutMs: 5000 }).catch(() => undefined);
      if (!q || q.status === 'completed') vmAtTarget = true;
    }
    if (vmAtTarget) {
      stage = 'failed';
      progress();
      await restoreSettings(settings, log);
      throw new VmMigrationError(`the VM runs at the target, but: ${(e as Error).message}`, 'target', { cause: e });
    }
    stage = 'rollback';
    progress();
    await rollback(src, ramStarted, storageHandedOver, disks, o, log);
    await restoreSettings(settings, log);
    throw new VmMigrationError(`VM migration failed; the VM keeps running at the source: ${(e as Error).message}`, 'source', { cause: e });
  } finally {
    ioErrors?.stop();
    src.close();
    dst?.close();
  }
}

/** Sets back the source QEMU's migration settings; a failure is a warning (the operator can set them). */
async function restoreSettings(settings: ChangedMigrationSettings | undefined, log?: Logger): Promise<void> {
  await settings?.restore(log).catch((e: unknown) => log?.warn({ err: (e as Error).message, before: settings.before }, 'could not restore the source QEMU\'s migration settings; set them back with migrate-set-parameters / migrate-set-capabilities'));
}

/**
 * Leaves the VM running at the source with its disk there. Best effort: every
 * step is tried. The disk is taken back before QEMU's migration is cancelled:
 * cancelling lets the source VM run again at once, and its I/O must find the
 * disk served, not shut.
 */
async function rollback(src: QmpClient, ramStarted: boolean, storageHandedOver: boolean, disks: DiskSet, o: VmMigrateOptions, log?: Logger): Promise<void> {
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      log?.warn({ err: (e as Error).message }, `rollback: ${what} failed`);
    }
  };
  // Every source agent takes its disk back (after a hand-over too: the target VM never ran).
  await step('abort the source agents', async () => {
    const failed = await disks.abortSources('VM migration failed', storageHandedOver);
    if (failed.length) throw new Error(failed.join('; '));
  });
  if (ramStarted) {
    await step('migrate_cancel', () => src.execute('migrate_cancel', undefined, { timeoutMs: 10_000 }));
    await step('wait for the cancel', async () => {
      for (let i = 0; i < 200; i++) {
        const q = await src.execute<QueryMigrate>('query-migrate');
        if (q.status !== 'cancelling' && q.status !== 'pre-switchover' && q.status !== 'active' && q.status !== 'device' && q.status !== 'setup') return;
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  }
  await step('abort the target agents', async () => {
    const failed = await disks.abortTargets('VM migration failed', log);
    if (failed.length) throw new Error(failed.join('; '));
  });
  await step('resume the source VM', async () => {
    const s = await src.execute<{ status: string }>('query-status');
    if (s.status !== 'running') await src.execute('cont');
  });
  log?.warn({ source: formatAddress(o.sourceQmp) }, 'VM migration rolled back: the VM runs at the source');
}

export { QmpError };
