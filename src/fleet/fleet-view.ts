/**
 * One view of a running fleet: a terminal table of every VM (phase, progress,
 * ETA, rate, WAN bytes) with the group's totals, Prometheus metrics per VM and
 * for the group (prom-client, read from the rows at each scrape), and the
 * fleet's control endpoint (`--control`): GET /status (rows and totals as
 * JSON, what `flimcd fleet status` prints) and GET /metrics.
 */
import { Gauge, Registry } from 'prom-client';
import { JsonHttpServer, requireLoopback } from '../control/http.ts';
import type { Address } from '../util/address.ts';
import { formatBitRate, formatBytes, formatDuration } from '../util/units.ts';
import type { FleetRow, FleetTotals } from './fleet-run.ts';

export interface FleetSnapshot {
  rows: FleetRow[];
  totals: FleetTotals;
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const eta = (s: number | null) => (s === null ? '-' : formatDuration(s * 1000));

/** The table, one line per VM and a totals line; plain text, columns padded. */
export function formatFleetTable(s: FleetSnapshot): string {
  const head = ['VM', 'TARGET', 'PHASE', 'PROGRESS', 'ETA', 'RATE', 'WAN', 'LAN'];
  const body = s.rows.map((r) => [
    r.name, r.target, r.phase + (r.error ? ' !' : ''), pct(r.progress), r.phase === 'done' ? '-' : eta(r.eta_s),
    r.rate_bps === null ? '-' : formatBitRate(r.rate_bps), formatBytes(r.wan_bytes), r.report ? String(r.report.from_lan.blocks) : '-',
  ]);
  const t = s.totals;
  const total = ['TOTAL', `${t.vms} VMs`, `${t.done} done, ${t.running} running, ${t.queued} queued${t.failed ? `, ${t.failed} failed` : ''}`, pct(t.progress), formatDuration(t.elapsed_s * 1000),
    `cap ${formatBitRate(t.wan_cap_bps)}`, formatBytes(t.wan_bytes), String(t.from_lan_blocks)];
  const all = [head, ...body, total];
  const widths = head.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
  return all.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const PHASES = ['queued', 'starting', 'precopy', 'cutover', 'postcopy', 'verify', 'done', 'failed'] as const;

/** Prometheus metrics for every VM (label `vm`) and for the group, read from `snapshot()` at each scrape. */
export function fleetMetrics(snapshot: () => FleetSnapshot): Registry {
  const registry = new Registry();
  let current: FleetSnapshot | undefined;
  const rows = () => current?.rows ?? [];
  // Every collect of one scrape reads the same snapshot: the first gauge takes it.
  const take = () => (current = snapshot());
  const perVm = (name: string, help: string, value: (r: FleetRow) => number | null, first = false) =>
    new Gauge({
      name, help, labelNames: ['vm'], registers: [registry],
      collect() {
        if (first) take();
        this.reset();
        for (const r of rows()) {
          const v = value(r);
          if (v !== null) this.set({ vm: r.name }, v);
        }
      },
    });
  perVm('flimcd_fleet_vm_progress_ratio', 'Share of the VM\'s blocks no longer waiting to cross', (r) => r.progress, true);
  perVm('flimcd_fleet_vm_eta_seconds', 'Seconds left at the current rate', (r) => r.eta_s);
  perVm('flimcd_fleet_vm_rate_bits_per_second', 'The VM link\'s delivery rate', (r) => r.rate_bps);
  perVm('flimcd_fleet_vm_wan_bytes', 'Bytes the VM\'s link put on the shared WAN', (r) => r.wan_bytes);
  perVm('flimcd_fleet_vm_lan_blocks', 'Blocks its target fetched from sibling hosts over the LAN', (r) => r.report?.from_lan.blocks ?? null);
  perVm('flimcd_fleet_vm_verified', '1 once the VM\'s migration is verified', (r) => (r.report?.verified ? 1 : 0));
  new Gauge({
    name: 'flimcd_fleet_vm_phase', help: '1 for the VM\'s current phase', labelNames: ['vm', 'phase'], registers: [registry],
    collect() {
      this.reset();
      for (const r of rows()) for (const p of PHASES) this.set({ vm: r.name, phase: p }, r.phase === p ? 1 : 0);
    },
  });
  const group = (name: string, help: string, value: (t: FleetTotals) => number) =>
    new Gauge({ name, help, registers: [registry], collect() { if (current) this.set(value(current.totals)); } });
  group('flimcd_fleet_vms', 'VMs in the plan', (t) => t.vms);
  group('flimcd_fleet_vms_done', 'VMs migrated and verified', (t) => t.verified);
  group('flimcd_fleet_vms_running', 'VMs migrating now', (t) => t.running);
  group('flimcd_fleet_vms_failed', 'VMs whose migration failed', (t) => t.failed);
  group('flimcd_fleet_progress_ratio', 'Mean progress over the group', (t) => t.progress);
  group('flimcd_fleet_wan_bytes', 'Bytes the group put on the shared WAN', (t) => t.wan_bytes);
  group('flimcd_fleet_wan_cap_bits_per_second', 'The group\'s WAN cap', (t) => t.wan_cap_bps);
  group('flimcd_fleet_lan_blocks', 'Blocks the group\'s targets fetched over the LAN', (t) => t.from_lan_blocks);
  return registry;
}

/** The fleet's control endpoint: GET /status and GET /metrics (loopback or unix only: it has no authentication). */
export async function startFleetControl(addr: Address, snapshot: () => FleetSnapshot): Promise<JsonHttpServer> {
  requireLoopback(addr, '--control', 'the fleet\'s control endpoint has no authentication');
  const registry = fleetMetrics(snapshot);
  const server = new JsonHttpServer({
    what: '--control',
    routes: { '/status': ['GET'], '/metrics': ['GET'] },
    handle: async (req) => (req.path === '/metrics' ? { text: await registry.metrics(), contentType: registry.contentType } : { json: { role: 'fleet', ...snapshot() } }),
  });
  await server.listen(addr);
  return server;
}
