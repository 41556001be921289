/**
 * The disks of one VM as `flimcd vm migrate` drives them: one flimcd agent
 * pair per disk (each disk its own source and target agent, each with its own
 * control endpoint), handled as one set. The set asks every agent at once and
 * answers for all: pre-copy converged when every disk finished its first pass
 * and the dirty sets together are small; cut-over is POST /cutover to every
 * source agent at once (QEMU holds the guest paused across all of them: one
 * storage downtime), then every target agent serving; rollback aborts every
 * agent. A disk's failure names the disk.
 *
 * Why a pair per disk rather than one agent serving several exports: today's
 * agents, their durable state directory, resume, reattach and report are all
 * per image; a pair per disk reuses them unchanged, and a disk's agent can
 * be restarted alone. The cost is one link per disk: on a shared WAN each
 * source agent gets its share of the link (`--bandwidth`), see docs/qemu.md.
 */
import type { Logger } from 'pino';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { controlRequest } from '../control/client.ts';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';

/** One disk's agents, by their control endpoints. */
export interface DiskEndpoints {
  /** A short name for reports and errors (e.g. `vda`); unique in the set. */
  name: string;
  sourceControl: Address;
  targetControl: Address;
}

/** An agent's `GET /status` (AgentStatus: phase, round, remainingBlocks, blockSize, wireBytes, verified …). */
export type AgentStatusRecord = Record<string, unknown>;

export interface DiskStatus {
  name: string;
  status: AgentStatusRecord;
}

/** A status field's number, or null when it is absent or not finite. */
export const finiteOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** The target agent serves the VM (the cut-over is done for this disk). */
export const SERVING_PHASES: readonly string[] = ['postcopy', 'verify', 'done'];
/** Status fields that add up across disks (counters, sizes, rates); the rest are per disk only. */
const ADDITIVE = /(Bytes|Blocks|Count|Requests|Bps)$|^blocks$/;

/** Checks a set's names and endpoints: at least one disk, names unique, no agent shared by two disks. */
export function checkDiskEndpoints(disks: readonly DiskEndpoints[]): void {
  if (disks.length === 0) throw new UsageError('no disks to migrate');
  const seen = new Set<string>();
  for (const d of disks) {
    if (seen.has(`name:${d.name}`)) throw new UsageError(`two disks are named ${d.name}`);
    seen.add(`name:${d.name}`);
    for (const a of [d.sourceControl, d.targetControl]) {
      const key = a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`;
      if (seen.has(key)) throw new UsageError(`disk ${d.name}: control endpoint ${key} is given twice; each disk has its own source and target agent`);
      seen.add(key);
    }
  }
}

export class DiskSet {
  readonly disks: readonly DiskEndpoints[];

  constructor(disks: readonly DiskEndpoints[], private readonly timeoutMs = 5000) {
    checkDiskEndpoints(disks);
    this.disks = disks;
  }

  get size(): number {
    return this.disks.length;
  }

  /** Every source agent's status, in the set's order. */
  sourceStatuses(): Promise<DiskStatus[]> {
    return this.statuses('sourceControl');
  }

  /** Every target agent's status, in the set's order. */
  targetStatuses(): Promise<DiskStatus[]> {
    return this.statuses('targetControl');
  }

  /** Throws, naming the disk, when any agent reports its migration failed. */
  static throwIfFailed(all: readonly DiskStatus[], side: 'source' | 'target', when: string): void {
    const bad = all.find((d) => d.status.phase === 'failed');
    if (bad) {
      const why = typeof bad.status.error === 'string' ? `: ${bad.status.error}` : '';
      throw new FlimcdError(`disk ${bad.name}: the ${side} agent reports the migration failed ${when}${why}`, ErrorCode.VM_MIGRATION);
    }
  }

  /**
   * Pre-copy converged for the whole VM: every disk's first pass is done and
   * the dirty sets together are at most `thresholdBytes` (the storage
   * downtime moves all of them over the one link).
   */
  static precopyConverged(all: readonly DiskStatus[], thresholdBytes: number): boolean {
    return all.every((d) => d.status.phase === 'precopy' && (finiteOrNull(d.status.round) ?? 0) >= 1) && remainingBytes(all) <= thresholdBytes;
  }

  /**
   * Storage cut-over of every disk at once: POST /cutover to each source
   * agent in parallel. Rejects (after every request settled) when any agent
   * refused, naming the disks.
   */
  async cutover(): Promise<void> {
    const rs = await Promise.allSettled(this.disks.map((d) => controlRequest(d.sourceControl, 'POST', '/cutover', { vmPaused: true }, { timeoutMs: this.timeoutMs })));
    const failed = rs.flatMap((r, i) => (r.status === 'rejected' ? [`disk ${this.disks[i]!.name}: ${(r.reason as Error).message}`] : []));
    if (failed.length) throw new FlimcdError(`storage cut-over refused: ${failed.join('; ')}`, ErrorCode.VM_MIGRATION);
  }

  /**
   * Rollback: every source agent takes its disk back (`reclaim` once it was
   * handed over), then every target agent is aborted. Best effort: every
   * agent is asked; returns what failed.
   */
  async abortSources(reason: string, reclaim: boolean): Promise<string[]> {
    return this.abortAll('sourceControl', { reason, ...(reclaim ? { reclaim: true } : {}) });
  }

  /** A target agent that has already stopped, or whose migration has already ended, is what a rollback wants: logged, not a failure. */
  async abortTargets(reason: string, log?: Logger): Promise<string[]> {
    return this.abortAll('targetControl', { reason }, (e, d) => {
      if (!(e instanceof FlimcdError)) return false;
      if (e.code === ErrorCode.CONTROL_UNREACHABLE) log?.info({ disk: d.name, target: formatAddress(d.targetControl) }, 'rollback: the target agent has already stopped');
      else if (e.code === ErrorCode.ABORT_REFUSED) log?.info({ disk: d.name, target: formatAddress(d.targetControl) }, 'rollback: the target agent\'s migration has already ended');
      else return false;
      return true;
    });
  }

  private async abortAll(side: 'sourceControl' | 'targetControl', body: Record<string, unknown>, isFine: (e: unknown, d: DiskEndpoints) => boolean = () => false): Promise<string[]> {
    const rs = await Promise.allSettled(this.disks.map((d) => controlRequest(d[side], 'POST', '/abort', body, { timeoutMs: this.timeoutMs })));
    return rs.flatMap((r, i) => (r.status === 'rejected' && !isFine(r.reason, this.disks[i]!) ? [`disk ${this.disks[i]!.name}: ${(r.reason as Error).message}`] : []));
  }

  private async statuses(side: 'sourceControl' | 'targetControl'): Promise<DiskStatus[]> {
    const rs = await Promise.allSettled(this.disks.map((d) => controlRequest<AgentStatusRecord>(d[side], 'GET', '/status', undefined, { timeoutMs: this.timeoutMs })));
    return rs.map((r, i) => {
      const name = this.disks[i]!.name;
      if (r.status === 'rejected') {
        const e = r.reason as Error;
        throw new FlimcdError(`disk ${name}: ${e.message}`, e instanceof FlimcdError ? e.code : ErrorCode.VM_MIGRATION, { cause: e });
      }
      return { name, status: r.value };
    });
  }
}

/** The dirty sets of all disks together, bytes (unknown counts as infinite). */
export function remainingBytes(all: readonly DiskStatus[]): number {
  return all.reduce((sum, d) => sum + (finiteOrNull(d.status.remainingBlocks) ?? Infinity) * (finiteOrNull(d.status.blockSize) ?? 65536), 0);
}

/** All the disks' blocks the target lacked (post-copy's share), or null when no disk says. */
export function sumField(all: readonly DiskStatus[], key: string): number | null {
  const vs = all.map((d) => finiteOrNull(d.status[key])).filter((v): v is number => v !== null);
  return vs.length ? vs.reduce((a, b) => a + b, 0) : null;
}

/**
 * One status for the whole VM: a single disk's status as it is; for several,
 * the counters summed, `phase` when all agree (else the disks' phases joined
 * by `/`), `verified` true only when every disk verified, `progress` weighted
 * by size.
 */
export function totalStatus(all: readonly DiskStatus[]): AgentStatusRecord {
  if (all.length === 1) return all[0]!.status;
  const out: AgentStatusRecord = {};
  for (const d of all) {
    for (const [k, v] of Object.entries(d.status)) {
      if (ADDITIVE.test(k) && typeof v === 'number') out[k] = (finiteOrNull(out[k]) ?? 0) + v;
    }
  }
  const phases = [...new Set(all.map((d) => String(d.status.phase)))];
  out.phase = phases.join('/');
  const verified = all.map((d) => d.status.verified);
  out.verified = verified.every((v) => v === true) ? true : verified.some((v) => v === false) ? false : null;
  const sizes = all.map((d) => (finiteOrNull(d.status.blocks) ?? 0) * (finiteOrNull(d.status.blockSize) ?? 0));
  const total = sizes.reduce((a, b) => a + b, 0);
  const progress = all.map((d) => finiteOrNull(d.status.progress));
  out.progress = progress.every((p) => p !== null) && total > 0 ? progress.reduce<number>((a, p, i) => a + p * sizes[i]!, 0) / total : null;
  const bs = all.map((d) => finiteOrNull(d.status.blockSize));
  if (bs.every((b) => b !== null && b === bs[0])) out.blockSize = bs[0];
  return out;
}
