/**
 * Human text for an agent status (control/types.ts AgentStatus): a table for
 * `flimcd status`, one compact line for logs and non-TTY watch output, and the
 * short pieces the progress bar shows.
 */
import type { AgentStatus } from '../control/types.ts';
import { formatBitRate, formatBytes, formatDuration } from '../util/units.ts';

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

export function formatPercent(fraction: unknown): string {
  return finite(fraction) ? `${(fraction * 100).toFixed(fraction >= 0.9995 && fraction < 1 ? 2 : 1)} %` : '–';
}

/** An ETA rounded as a person reads it: "0 s", "3 s", "4m05s", "1h02m"; "–" when unknown. */
export function formatEta(seconds: unknown): string {
  if (!finite(seconds) || seconds < 0) return '–';
  if (seconds >= 3600) {
    const h = Math.floor(seconds / 3600);
    return `${h}h${Math.round((seconds - h * 3600) / 60).toString().padStart(2, '0')}m`;
  }
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  return formatDuration(Math.round(seconds) * 1000);
}

export function formatRate(bps: unknown): string {
  return finite(bps) ? formatBitRate(bps) : '–';
}

/** "12.3 % of 1.0 GiB" style remaining text, or undefined when unknown. */
function remainingText(s: AgentStatus): string | undefined {
  const r = s.remainingBlocks;
  if (!finite(r)) return undefined;
  const parts = [`${int(r)} blocks`];
  if (finite(s.blockSize)) parts.push(formatBytes(r * s.blockSize));
  return finite(s.blocks) ? `${parts.join(', ')} of ${int(s.blocks)}` : parts.join(', ');
}

function missText(s: AgentStatus): string | undefined {
  const reads = s.readBlocks;
  const misses = s.missBlocks;
  if (finite(reads) && finite(misses) && reads > 0) {
    return `${int(misses)} of ${int(reads)} blocks read (${finite(s.blockMissRate) ? (s.blockMissRate * 100).toFixed(2) : reads ? ((misses / reads) * 100).toFixed(2) : '0.00'} %)`;
  }
  const demand = s.counts?.demandBlocks;
  if (finite(demand) && demand > 0) return `${int(demand)} blocks served on demand`;
  return undefined;
}

/** Miss latency and prefetch effect (target in post-copy), or undefined when unknown. */
function prefetchText(s: AgentStatus): string | undefined {
  if (!finite(s.prefetchRequested)) return undefined;
  const parts = [`${int(s.prefetchHits as number)} hits`, `${int(s.prefetchRequested)} blocks asked`];
  if (finite(s.prefetchWastedBytes)) parts.push(`${formatBytes(s.prefetchWastedBytes)} wasted`);
  return parts.join(', ');
}

function missLatencyText(s: AgentStatus): string | undefined {
  if (!finite(s.missP50)) return undefined;
  return `p50 ${s.missP50.toFixed(1)} ms, p99 ${finite(s.missP99) ? s.missP99.toFixed(1) : '–'} ms`;
}

/** The `flimcd status` table: only rows that are known. */
export function formatStatus(s: AgentStatus): string {
  const rows: Array<[string, string]> = [];
  rows.push(['role', String(s.role ?? '?')]);
  rows.push(['phase', `${s.phase}${finite(s.round) && s.phase === 'precopy' ? ` (round ${s.round})` : ''}`]);
  // A source whose migration ended with the VM's disk here: say why, and how to start again.
  const ended = s.lastMigration as { reason?: unknown } | undefined;
  if (s.phase === 'idle' && ended) rows.push(['migration', `none running; the last one ended: ${String(ended.reason)} (flimcd retry starts a new one)`]);
  const aborted = (s.abort as { reason?: unknown } | undefined)?.reason;
  if (s.phase === 'aborting') rows.push(['migration', `aborted (${typeof aborted === 'string' ? aborted : '?'}); winding down, idle next`]);
  if (typeof s.algorithm === 'string') rows.push(['algorithm', s.algorithm]);
  rows.push(['progress', formatPercent(s.progress)]);
  const rem = remainingText(s);
  if (rem) rows.push(['remaining', rem]);
  const rates: string[] = [];
  if (finite(s.transferRateBps)) rates.push(`${formatBitRate(s.transferRateBps)} transfer`);
  if (finite(s.linkRateBps)) rates.push(`${formatBitRate(s.linkRateBps)} link`);
  if (finite(s.rttMs)) rates.push(`RTT ${s.rttMs.toFixed(1)} ms`);
  if (rates.length) rows.push(['rate', rates.join(', ')]);
  rows.push(['eta', formatEta(s.etaSeconds)]);
  if (finite(s.wireBytes)) rows.push(['wire', formatBytes(s.wireBytes)]);
  else if (finite(s.receivedBytes)) rows.push(['received', formatBytes(s.receivedBytes)]);
  const miss = missText(s);
  if (miss) rows.push(['misses', miss]);
  const missLat = missLatencyText(s);
  if (missLat) rows.push(['miss latency', missLat]);
  const pf = prefetchText(s);
  if (pf) rows.push(['prefetch', pf]);
  if (Array.isArray(s.features)) rows.push(['features', s.features.length ? s.features.join(', ') : 'none']);
  if (finite(s.elapsedMs)) rows.push(['elapsed', formatDuration(s.elapsedMs)]);
  const counts = s.counts && typeof s.counts === 'object' ? Object.entries(s.counts).filter(([, v]) => finite(v) && v > 0) : [];
  if (counts.length) rows.push(['counts', counts.map(([k, v]) => `${k.replace(/Blocks$/, '')} ${int(v)}`).join(', ')]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/** One line: "source precopy 42.1 % | 1,234 blocks, 77.1 MiB left | 93.4 Mbit/s | ETA 12.0 s | wire 1.21 GiB". */
export function statusLine(s: AgentStatus): string {
  const parts = [`${s.role ?? '?'} ${s.phase}`];
  if (s.phase === 'idle') parts.push('no migration running (flimcd retry starts one)');
  if (s.phase === 'aborting') parts.push('aborted, winding down (idle next)');
  if (finite(s.progress)) parts[0] += ` ${formatPercent(s.progress)}`;
  const r = s.remainingBlocks;
  if (finite(r)) parts.push(`${int(r)} blocks${finite(s.blockSize) ? `, ${formatBytes(r * s.blockSize)}` : ''} left`);
  const rate = finite(s.transferRateBps) ? s.transferRateBps : s.linkRateBps;
  if (finite(rate)) parts.push(formatBitRate(rate));
  if (finite(s.etaSeconds)) parts.push(`ETA ${formatEta(s.etaSeconds)}`);
  if (finite(s.wireBytes)) parts.push(`wire ${formatBytes(s.wireBytes)}`);
  const miss = missText(s);
  if (miss && finite(s.readBlocks)) parts.push(`misses ${miss}`);
  return parts.join(' | ');
}
