/**
 * `flimcd fleet run`: many migrations in one process. Each VM gets a source
 * agent (its disk served over NBD to the VM, migrated to the plan's target
 * agent), at most `concurrency` migrating at once, started in the plan's
 * order (src/fleet/order.ts). Every migration's link leaves through one
 * FairShareLink: the plan's WAN cap, shared by the VMs' priorities. Sending
 * shared content once is the targets' part (src/locator/claiming-content.ts):
 * targets run with `--cluster` and claim content before asking their source.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SourceAgent } from '../migrate/source-agent.ts';
import { BaseRoots } from '../image/base-roots.ts';
import type { MigrationReport } from '../migrate/report.ts';
import { resolveFeatures } from '../policy/algorithm.ts';
import type { LinkSecurity } from '../wire/secure-link.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { realClock, type Clock } from '../util/clock.ts';
import { FairShareLink, ShapedRelay } from './fair-share-link.ts';
import { orderVms, predict, type Predicted } from './order.ts';
import type { FleetPlan, FleetVm } from './plan.ts';
import { FlimcdError } from '../errors.ts';

export type FleetPhase = 'queued' | 'starting' | 'precopy' | 'cutover' | 'postcopy' | 'verify' | 'done' | 'failed';

/** One VM as the fleet's view shows it. */
export interface FleetRow {
  name: string;
  target: string;
  priority: number;
  deadline_s: number | null;
  /** Position in the chosen order (0 first). */
  order: number;
  predicted_s: number;
  phase: FleetPhase;
  /** Share of the image's blocks no longer waiting to cross, 0..1. */
  progress: number;
  /** Seconds left at the current rate (null when unknown). */
  eta_s: number | null;
  /** The link's delivery rate (bits/s) as the source measures it. */
  rate_bps: number | null;
  /** Bytes this VM's link put on the shared WAN (source → target, TLS included). */
  wan_bytes: number;
  started_s: number | null;
  finished_s: number | null;
  error: string | null;
  report: MigrationReport | null;
}

export interface FleetTotals {
  vms: number;
  queued: number;
  running: number;
  done: number;
  failed: number;
  verified: number;
  progress: number;
  wan_bytes: number;
  wan_cap_bps: number;
  data_bytes: number;
  from_lan_blocks: number;
  from_lan_bytes: number;
  elapsed_s: number;
}

export interface FleetRunOptions {
  plan: FleetPlan;
  security: LinkSecurity;
  /** Run directory: the VMs' NBD sockets (when the plan names none) and state of NBD-URI images. */
  dir: string;
  log: Logger;
  clock?: Clock;
  /** Every VM phase change, and each report: the `--json` events. */
  onEvent?: (e: Record<string, unknown>) => void;
  /** The VM's disk is being served at `nbd`, before its migration starts (a test starts the VM's workload here). */
  onServing?: (vm: FleetVm, nbd: Address, source: SourceAgent) => void | Promise<void>;
  /** Predicted migration times by VM name (the planner's, `predict: simulator`); the others get the size model. */
  predictedS?: ReadonlyMap<string, number>;
  /** A VM's migration ended (its source is closed after this returns). */
  onFinished?: (vm: FleetVm, report: MigrationReport | undefined) => void | Promise<void>;
}

export interface FleetResult {
  rows: FleetRow[];
  totals: FleetTotals;
  ok: boolean;
}

function dataBytes(vm: FleetVm): number | undefined {
  if (vm.image.kind !== 'file') return undefined;
  try {
    return statSync(vm.image.path).blocks * 512;
  } catch {
    return undefined;
  }
}

export class FleetRun {
  private readonly clock: Clock;
  private readonly link: FairShareLink;
  private readonly rowsByName = new Map<string, FleetRow>();
  private readonly sources = new Map<string, SourceAgent>();
  /** VMs cloned from one template share its base: hashed once for all of them. */
  private readonly baseRoots = new BaseRoots();
  private readonly order: Predicted[];
  private t0 = 0;
  private stopping = false;

  constructor(private readonly o: FleetRunOptions) {
    this.clock = o.clock ?? realClock;
    this.link = new FairShareLink({ capBps: o.plan.wanCapBps, clock: this.clock });
    const sizes = o.plan.vms.map((vm) => ({ vm, bytes: dataBytes(vm) }));
    const known = sizes.filter((s) => s.bytes !== undefined);
    const mean = known.length ? known.reduce((s, k) => s + k.bytes!, 0) / known.length : 0;
    this.order = orderVms(predict(sizes.map((s) => ({ vm: s.vm, dataBytes: s.bytes ?? mean })), o.plan.wanCapBps, o.plan.concurrency, o.predictedS), o.plan.order);
    this.order.forEach((p, i) => {
      this.rowsByName.set(p.vm.name, {
        name: p.vm.name, target: formatAddress(p.vm.target), priority: p.vm.priority, deadline_s: p.vm.deadlineMs === undefined ? null : p.vm.deadlineMs / 1000,
        order: i, predicted_s: p.predictedS, phase: 'queued', progress: 0, eta_s: null, rate_bps: null, wan_bytes: 0, started_s: null, finished_s: null, error: null, report: null,
      });
    });
  }

  /** The view: every VM's row, refreshed from its source agent. */
  rows(): FleetRow[] {
    const sent = this.link.sent();
    for (const row of this.rowsByName.values()) {
      row.wan_bytes = sent[row.name] ?? row.wan_bytes;
      const src = this.sources.get(row.name);
      if (!src || row.phase === 'done' || row.phase === 'failed') continue;
      const st = src.status() as { phase?: string; blocks?: number; remainingBlocks?: number; blockSize?: number; linkRateBps?: number };
      if (st.phase && st.phase !== row.phase && st.phase !== 'done' && st.phase !== 'failed') this.phase(row, st.phase as FleetPhase);
      if (st.blocks && st.remainingBlocks !== undefined) {
        row.progress = Math.max(0, Math.min(1, 1 - st.remainingBlocks / st.blocks));
        row.rate_bps = st.linkRateBps ?? null;
        row.eta_s = st.linkRateBps && st.blockSize ? (st.remainingBlocks * st.blockSize * 8) / st.linkRateBps : null;
      }
    }
    return [...this.rowsByName.values()].sort((a, b) => a.order - b.order);
  }

  totals(rows = this.rows()): FleetTotals {
    const count = (p: (r: FleetRow) => boolean) => rows.filter(p).length;
    return {
      vms: rows.length,
      queued: count((r) => r.phase === 'queued'),
      running: count((r) => r.phase !== 'queued' && r.phase !== 'done' && r.phase !== 'failed'),
      done: count((r) => r.phase === 'done'),
      failed: count((r) => r.phase === 'failed'),
      verified: count((r) => r.report?.verified === true),
      progress: rows.length ? rows.reduce((s, r) => s + r.progress, 0) / rows.length : 0,
      wan_bytes: rows.reduce((s, r) => s + r.wan_bytes, 0),
      wan_cap_bps: this.o.plan.wanCapBps,
      data_bytes: rows.reduce((s, r) => s + (r.report?.wire_bytes_breakdown.data ?? 0), 0),
      from_lan_blocks: rows.reduce((s, r) => s + (r.report?.from_lan.blocks ?? 0), 0),
      from_lan_bytes: rows.reduce((s, r) => s + (r.report?.from_lan.bytes ?? 0), 0),
      elapsed_s: this.t0 ? (this.clock.now() - this.t0) / 1000 : 0,
    };
  }

  private phase(row: FleetRow, phase: FleetPhase, extra: Record<string, unknown> = {}): void {
    row.phase = phase;
    this.o.onEvent?.({ event: 'vm', vm: row.name, phase, progress: row.progress, eta_s: row.eta_s, wan_bytes: row.wan_bytes, ...extra });
  }

  /** Runs every VM to its end (a failed VM does not stop the others); `ok` when all are verified. */
  async run(): Promise<FleetResult> {
    this.t0 = this.clock.now();
    const queue = [...this.order];
    const worker = async () => {
      for (let next = queue.shift(); next && !this.stopping; next = queue.shift()) await this.migrateOne(next.vm);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.plan.concurrency, queue.length) }, worker));
    this.link.close();
    const rows = this.rows();
    const totals = this.totals(rows);
    this.o.onEvent?.({ event: 'fleet', ...totals });
    return { rows, totals, ok: totals.verified === totals.vms };
  }

  private async migrateOne(vm: FleetVm): Promise<void> {
    const row = this.rowsByName.get(vm.name)!;
    const { plan, log } = this.o;
    row.started_s = (this.clock.now() - this.t0) / 1000;
    this.phase(row, 'starting');
    const flow = this.link.flow(vm.name, vm.priority);
    const relay = new ShapedRelay(this.link, flow, vm.target);
    let source: SourceAgent | undefined;
    let report: MigrationReport | undefined;
    try {
      const to = await relay.listen();
      const nbd = vm.nbd ?? { kind: 'unix' as const, path: join(this.o.dir, `${vm.name}.sock`) };
      source = await SourceAgent.start({
        image: vm.image.kind === 'file' ? vm.image.path : vm.image.uri, format: vm.image.kind === 'file' ? vm.image.format : undefined,
        stateDir: vm.image.kind === 'nbd' ? join(this.o.dir, `${vm.name}.state`) : undefined,
        nbd, to, security: this.o.security, algorithm: plan.algorithm, blockSize: plan.blockSize,
        bandwidthBps: plan.wanCapBps / Math.min(plan.concurrency, plan.vms.length), features: resolveFeatures(plan.algorithm),
        log: log.child({ vm: vm.name }), baseRoots: this.baseRoots,
      });
      this.sources.set(vm.name, source);
      await this.o.onServing?.(vm, source.nbdAddress, source);
      report = await source.migrate();
      row.report = report;
      row.progress = 1;
      row.eta_s = 0;
      row.finished_s = (this.clock.now() - this.t0) / 1000;
      row.wan_bytes = flow.bytesSent;
      this.phase(row, report.verified ? 'done' : 'failed', { verified: report.verified });
      this.o.onEvent?.({ event: 'report', vm: vm.name, ...report });
    } catch (e) {
      row.error = e instanceof FlimcdError ? `${e.message} (${e.code})` : (e as Error).message;
      row.finished_s = (this.clock.now() - this.t0) / 1000;
      row.wan_bytes = flow.bytesSent;
      log.error({ vm: vm.name, err: row.error }, 'migration failed');
      this.phase(row, 'failed', { error: row.error });
    } finally {
      await Promise.resolve(this.o.onFinished?.(vm, report)).catch(() => {});
      this.sources.delete(vm.name);
      await source?.close().catch(() => {});
      await relay.close();
    }
  }

  /** Stops starting queued VMs (running ones finish). */
  stop(): void {
    this.stopping = true;
  }
}
