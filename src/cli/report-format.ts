import type { MigrationReport } from '../migrate/report.ts';
import { formatBitRate, formatBytes } from '../util/units.ts';

/** The final report as an aligned two-column table; the last row is `verified`. */
export function formatReport(r: MigrationReport, extra: Array<[string, string]> = []): string {
  const ms = (v: number | null) => (v === null ? '–' : `${v.toFixed(1)} ms`);
  const rows: Array<[string, string]> = [
    ['algorithm', `${r.algorithm}${r.features ? ` (hot order ${r.features.hot_order ? 'on' : 'off'}, prefetch ${r.features.prefetch ? 'on' : 'off'})` : ''}`],
    ['image', `${formatBytes(r.image_bytes)}, ${formatBytes(r.block_size)} blocks`],
    ['link', `${r.link.bandwidth_bps ? formatBitRate(r.link.bandwidth_bps) : '?'} configured, ${r.link.measured_rate_bps ? formatBitRate(r.link.measured_rate_bps) : '?'} measured, RTT ${r.link.rtt_ms === null ? '?' : r.link.rtt_ms.toFixed(1) + ' ms'}${r.link.ack_rtt_ms === null ? '' : ` (${r.link.ack_rtt_ms.toFixed(1)} ms to the target's ack after applying)`}`],
    ['time total', `${r.time_total_s.toFixed(2)} s (pre-copy ${r.time_precopy_s.toFixed(2)} s, post-copy ${r.time_postcopy_s.toFixed(2)} s)`],
    ['downtime', `${r.downtime_ms.toFixed(1)} ms`],
    ['rounds', `${r.rounds} (cut-over: ${r.cutover_reason})`],
    ['wire bytes', `${formatBytes(r.wire_bytes)} (data ${formatBytes(r.wire_bytes_breakdown.data)}, references ${formatBytes(r.wire_bytes_breakdown.reference)}, zero ${formatBytes(r.wire_bytes_breakdown.zero)}, control ${formatBytes(r.wire_bytes_breakdown.control)})`],
    ['blocks', `${r.blocks.sent_data} data, ${r.blocks.sent_reference} references, ${r.blocks.from_replica} from replicas, ${r.blocks.zero} zero, ${r.blocks.resent_dirty} resent after dirtying`],
    ['compression', r.compression.compressed_blocks ? `zstd level ${r.compression.level ?? '?'}: ${formatBytes(r.compression.raw_bytes)} of block data in ${formatBytes(r.compression.wire_bytes)} (${r.compression.compressed_blocks} blocks compressed)` : 'off'],
    ['post-copy', `${r.blocks.push} pushed, ${r.blocks.demand} fetched on demand, ${r.blocks.prefetch} prefetched, ${r.blocks.canceled_by_target_write} overwritten at the target`],
    ['block miss rate', `${(r.block_miss_rate * 100).toFixed(2)} % (${r.misses} of ${r.blocks_read_postcopy} blocks read; latency p50 ${ms(r.miss_latency_ms.p50)}, p99 ${ms(r.miss_latency_ms.p99)})`],
    ['prefetch', `${r.prefetch_hits ?? 0} hits of ${r.prefetch_requested ?? 0} blocks asked, ${formatBytes(r.prefetch_wasted_bytes ?? 0)} never read`],
    ...(r.resumes && (r.resumes.reattached || r.resumes.resynced || (r.resumes.sessions ?? 1) > 1)
      ? [['resumes', `${r.resumes.reattached} link reattaches, ${r.resumes.resynced} restarts resynced${(r.resumes.sessions ?? 1) > 1 ? `; ${r.resumes.sessions} sessions, times from the first start, wire bytes summed${r.resumes.wire_bytes_exact === false ? ' (a killed source\'s last seconds not counted)' : ''}` : ''}`] as [string, string]]
      : []),
    ...extra,
    ['merkle root', r.merkle_root.slice(0, 16) + '…'],
    ['verified', String(r.verified)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
