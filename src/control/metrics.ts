/**
 * Prometheus exposition of an agent's status. `statusSamples()` maps a status
 * object to samples (pure, stable names); `MetricsMirror` keeps a per-server
 * prom-client Registry (never the global one) in step with those samples and
 * renders the text format.
 *
 * Names (all prefixed flimcd_):
 *   phase{phase}                       1 for the current phase, 0 for the others
 *   agent_info{role,algorithm}         1
 *   wire_bytes_total                   counter (status.wireBytes)
 *   received_bytes_total               counter (target payload bytes)
 *   remaining_blocks, missing_blocks, image_blocks, block_size_bytes, precopy_round
 *   progress_ratio, eta_seconds, elapsed_seconds
 *   transfer_rate_bits_per_second, link_rate_bits_per_second, rtt_seconds
 *   block_miss_rate, read_blocks_total, miss_blocks_total, fetch_requests_total,
 *   claimed_by_write_blocks_total, partial_write_fetches_total, dropped_data_total (target post-copy)
 *   miss_latency_seconds{quantile="0.5"|"0.99"}, miss_latency_mean_seconds
 *   blocks_total{kind}                 counter, from status.counts.<kind>Blocks (data, zero, resent, demand, …)
 *   <name>_total                       counter, other status.counts entries (dirty_events_total)
 *   received_blocks_total{reason}      counter, from the target's receivedBlocks record
 * Any other numeric field becomes a gauge named after it in snake case, with
 * its unit converted by suffix (…Ms → …_seconds, …Bps → …_bits_per_second);
 * booleans become 0/1; any other record of numbers becomes one gauge with a
 * `key` label per entry. Fields that are null or absent produce no sample.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { AgentStatus, MetricSample } from './types.ts';

export const PREFIX = 'flimcd_';
export const KNOWN_PHASES = ['starting', 'precopy', 'cutover', 'postcopy', 'verify', 'done', 'failed'] as const;

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function snake(s: string): string {
  const out = s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[0-9]/.test(out) ? `_${out}` : out || '_';
}

interface Known {
  name: string;
  help: string;
  type?: 'gauge' | 'counter';
  scale?: number;
  labels?: Record<string, string>;
}

/** Top-level status fields with names fixed by hand (a contract with dashboards). */
const KNOWN: Record<string, Known> = {
  wireBytes: { name: 'wire_bytes_total', help: 'Bytes this agent put on or took off the link (payload and framing, both directions)', type: 'counter' },
  receivedBytes: { name: 'received_bytes_total', help: 'Block payload bytes received from the peer', type: 'counter' },
  remainingBlocks: { name: 'remaining_blocks', help: 'Blocks this side still has to move (pre-copy dirty set, then post-copy push/missing set)' },
  missingBlocks: { name: 'missing_blocks', help: 'Blocks absent at the target (post-copy)' },
  blocks: { name: 'image_blocks', help: 'Blocks in the image' },
  blockSize: { name: 'block_size_bytes', help: 'Block size in bytes' },
  round: { name: 'precopy_round', help: 'Current pre-copy dirty round' },
  progress: { name: 'progress_ratio', help: 'Share of the image present at the target (0..1)' },
  etaSeconds: { name: 'eta_seconds', help: 'Estimated seconds until done' },
  elapsedMs: { name: 'elapsed_seconds', help: 'Seconds since the migration started', scale: 1e-3 },
  transferRateBps: { name: 'transfer_rate_bits_per_second', help: 'Observed transfer rate over the last seconds' },
  linkRateBps: { name: 'link_rate_bits_per_second', help: 'Measured link delivery rate' },
  rttMs: { name: 'rtt_seconds', help: 'Minimum round-trip time measured on the link', scale: 1e-3 },
  blockMissRate: { name: 'block_miss_rate', help: 'Post-copy: blocks read at the target that were absent / blocks read' },
  readBlocks: { name: 'read_blocks_total', help: 'Blocks read by the VM at the target (post-copy)', type: 'counter' },
  missBlocks: { name: 'miss_blocks_total', help: 'Blocks read by the VM at the target that were absent', type: 'counter' },
  claimedByWrite: { name: 'claimed_by_write_blocks_total', help: 'Blocks the VM wrote whole at the target (no fetch needed)', type: 'counter' },
  partialWriteFetches: { name: 'partial_write_fetches_total', help: 'Blocks fetched first because a write at the target covered them partly', type: 'counter' },
  droppedData: { name: 'dropped_data_total', help: 'Blocks that arrived already present at the target (dropped)', type: 'counter' },
  fetchRequests: { name: 'fetch_requests_total', help: 'On-demand fetch requests sent to the source', type: 'counter' },
  missP50: { name: 'miss_latency_seconds', help: 'Latency of post-copy misses', scale: 1e-3, labels: { quantile: '0.5' } },
  missP99: { name: 'miss_latency_seconds', help: 'Latency of post-copy misses', scale: 1e-3, labels: { quantile: '0.99' } },
  missMean: { name: 'miss_latency_mean_seconds', help: 'Mean latency of post-copy misses', scale: 1e-3 },
};

/** Records of counters with a dedicated label name. */
const RECORD_LABELS: Record<string, { name: string; label: string; help: string }> = {
  receivedBlocks: { name: 'received_blocks_total', label: 'reason', help: 'Blocks received from the peer, by reason' },
};

/** Fields that are not metrics (strings handled separately, or big nested blobs). */
const SKIP = new Set(['phase', 'role']);

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Generic name and scale for a field: unit by suffix. */
function genericName(key: string): { name: string; scale: number } {
  if (/Ms$/.test(key) && key.length > 2) return { name: `${snake(key.slice(0, -2))}_seconds`, scale: 1e-3 };
  if (/Bps$/.test(key) && key.length > 3) return { name: `${snake(key.slice(0, -3))}_bits_per_second`, scale: 1 };
  return { name: snake(key), scale: 1 };
}

/** Maps a status object to metric samples; deterministic and free of I/O. */
export function statusSamples(status: AgentStatus, role?: string): MetricSample[] {
  const out: MetricSample[] = [];
  const phase = typeof status.phase === 'string' ? status.phase : 'starting';
  const phases: string[] = [...KNOWN_PHASES];
  if (!phases.includes(phase)) phases.push(phase);
  for (const p of phases) out.push({ name: `${PREFIX}phase`, help: 'Current migration phase (1 for the current one)', labels: { phase: p }, value: p === phase ? 1 : 0 });
  const info: Record<string, string> = { role: String(status.role ?? role ?? 'unknown') };
  if (typeof status.algorithm === 'string') info.algorithm = status.algorithm;
  out.push({ name: `${PREFIX}agent_info`, help: 'Agent role and algorithm', labels: info, value: 1 });

  for (const [key, v] of Object.entries(status)) {
    if (SKIP.has(key) || v === null || v === undefined) continue;
    const known = KNOWN[key];
    if (finite(v) || typeof v === 'boolean') {
      const value = typeof v === 'boolean' ? (v ? 1 : 0) : v;
      if (known) {
        out.push({ name: PREFIX + known.name, help: known.help, type: known.type ?? 'gauge', ...(known.labels ? { labels: known.labels } : {}), value: value * (known.scale ?? 1) });
      } else {
        const g = genericName(key);
        out.push({ name: PREFIX + g.name, help: `status field ${key}`, type: 'gauge', value: value * g.scale });
      }
      continue;
    }
    if (!isRecord(v)) continue;
    if (key === 'counts') {
      for (const [k, n] of Object.entries(v)) {
        if (!finite(n)) continue;
        const m = /^(.+)Blocks$/.exec(k);
        if (m) out.push({ name: `${PREFIX}blocks_total`, help: 'Blocks moved, by kind (data, zero, resent, demand, prefetch, push, stop_copy, canceled)', type: 'counter', labels: { kind: snake(m[1]!) }, value: n });
        else out.push({ name: `${PREFIX}${snake(k)}_total`, help: `counter ${k}`, type: 'counter', value: n });
      }
      continue;
    }
    const rec = RECORD_LABELS[key];
    if (rec) {
      for (const [k, n] of Object.entries(v)) {
        if (finite(n)) out.push({ name: PREFIX + rec.name, help: rec.help, type: 'counter', labels: { [rec.label]: snake(k) }, value: n });
      }
      continue;
    }
    flattenRecord(out, snake(key), v, key, 0);
  }
  return out;
}

/** A record of numbers → one gauge with a `key` label; nested records extend the name. */
function flattenRecord(out: MetricSample[], base: string, rec: Record<string, unknown>, path: string, depth: number): void {
  if (depth > 3) return;
  for (const [k, v] of Object.entries(rec)) {
    if (finite(v) || typeof v === 'boolean') {
      out.push({ name: PREFIX + base, help: `status record ${path}`, type: 'gauge', labels: { key: snake(k) }, value: typeof v === 'boolean' ? (v ? 1 : 0) : v });
    } else if (isRecord(v)) {
      flattenRecord(out, `${base}_${snake(k)}`, v, `${path}.${k}`, depth + 1);
    }
  }
}

type Metric = { type: 'gauge'; labelNames: string[]; m: Gauge } | { type: 'counter'; labelNames: string[]; m: Counter };

/**
 * A prom-client Registry of this server's own, mirroring the latest samples.
 * Metrics appear when a sample first names them and disappear when no sample
 * does (an unknown ETA is absent, not zero).
 */
export class MetricsMirror {
  readonly registry = new Registry();
  private readonly metrics = new Map<string, Metric>();
  private chain: Promise<unknown> = Promise.resolve();

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Updates the registry to exactly `samples` and renders the exposition text. Scrapes are serialised. */
  render(samples: MetricSample[]): Promise<string> {
    const run = this.chain.then(() => {
      this.apply(samples);
      return this.registry.metrics();
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private apply(samples: MetricSample[]): void {
    const byName = new Map<string, { type: 'gauge' | 'counter'; help: string; labelNames: string[]; samples: MetricSample[] }>();
    const seen = new Set<string>();
    for (const s of samples) {
      if (!NAME_RE.test(s.name)) throw new TypeError(`invalid metric name ${JSON.stringify(s.name)}`);
      if (!finite(s.value)) continue;
      const labels = s.labels ?? {};
      const labelNames = Object.keys(labels).sort();
      for (const l of labelNames) if (!LABEL_RE.test(l) || l.startsWith('__')) throw new TypeError(`invalid label name ${JSON.stringify(l)} on ${s.name}`);
      const type = s.type ?? 'gauge';
      let group = byName.get(s.name);
      if (!group) {
        group = { type, help: s.help ?? s.name, labelNames, samples: [] };
        byName.set(s.name, group);
      } else if (group.type !== type || group.labelNames.join() !== labelNames.join()) {
        continue; // first definition wins; names stay stable
      }
      const id = `${s.name}{${labelNames.map((l) => `${l}=${labels[l]}`).join(',')}}`;
      if (seen.has(id)) continue;
      seen.add(id);
      group.samples.push(s);
    }
    for (const [name, m] of this.metrics) {
      const g = byName.get(name);
      if (!g || g.type !== m.type || g.labelNames.join() !== m.labelNames.join()) {
        this.registry.removeSingleMetric(name);
        this.metrics.delete(name);
      }
    }
    for (const [name, g] of byName) {
      let m = this.metrics.get(name);
      if (!m) {
        const config = { name, help: g.help, labelNames: g.labelNames, registers: [this.registry] };
        m = g.type === 'counter' ? { type: 'counter', labelNames: g.labelNames, m: new Counter(config) } : { type: 'gauge', labelNames: g.labelNames, m: new Gauge(config) };
        this.metrics.set(name, m);
      }
      m.m.reset();
      for (const s of g.samples) {
        const given = s.labels ?? {};
        const labels: Record<string, string> = {};
        for (const l of g.labelNames) labels[l] = String(given[l]);
        if (m.type === 'counter') m.m.inc(labels, Math.max(0, s.value));
        else m.m.set(labels, s.value);
      }
    }
  }
}
