import type { ChannelStats } from '../wire/channel.ts';
import type { WireBreakdown } from '../wire/wire-ledger.ts';
import type { TargetDedupStats, TargetStats } from '../wire/target-stats.ts';
import type { Algorithm, Features } from '../policy/algorithm.ts';

export type Phase = 'starting' | 'precopy' | 'cutover' | 'postcopy' | 'verify' | 'done' | 'failed';

export interface SourceStatus {
  phase: Phase;
  round: number;
  blocks: number;
  blockSize: number;
  remainingBlocks: number;
  elapsedMs: number;
  wireBytes: number;
  linkRateBps: number | undefined;
  rttMs: number | undefined;
  counts: Record<string, number>;
}

/** The final report (docs/design.md "Report fields" lists them all); field names are a contract with benchmarks and tests. */
export interface MigrationReport {
  algorithm: Algorithm;
  /** Optimizations that were on. */
  features: { hot_order: boolean; prefetch: boolean };
  image_bytes: number;
  block_size: number;
  verified: boolean;
  merkle_root: string;
  time_total_s: number;
  time_precopy_s: number;
  time_postcopy_s: number;
  downtime_ms: number;
  wire_bytes: number;
  wire_bytes_breakdown: { data: number; reference: number; zero: number; control: number };
  blocks: { sent_data: number; sent_reference: number; from_replica: number; from_backing: number; zero: number; resent_dirty: number; demand: number; prefetch: number; push: number; stop_copy: number; canceled_by_target_write: number; demand_promoted: number };
  rounds: number;
  cutover_reason: string;
  block_miss_rate: number;
  misses: number;
  blocks_read_postcopy: number;
  /** Post-copy: blocks a partial write touched while absent (the write fetched the block first). */
  write_fetches: number;
  /** Post-copy: blocks touched by the target-side VM's writes. */
  blocks_written_postcopy: number;
  /** (misses + write_fetches) / (blocks_read_postcopy + blocks_written_postcopy): every access that waited for the link. */
  demand_fetch_rate: number;
  miss_latency_ms: { p50: number | null; p99: number | null; mean: number | null };
  /** Blocks asked for by prefetch (on a miss: sequential streams, hot areas, co-access). */
  prefetch_requested: number;
  /** prefetch_requested by what asked: sequential streams, whole hot areas, co-accessed areas. */
  prefetch_by: { stream: number; area: number; co_access: number };
  /** Reads at the target of blocks that prefetch brought in before they were read. */
  prefetch_hits: number;
  /** Bytes prefetch brought in that the VM had not read when post-copy ended. */
  prefetch_wasted_bytes: number;
  /** bandwidth_bps as configured; measured_rate_bps: the median delivery rate while the link was the limit (link-estimator.ts linkRateBps). */
  /**
   * rtt_ms: the smallest ping round trip (a ping a second; one may wait behind bulk data in the
   * network's queue); ack_rtt_ms: the smallest time from sending a message to the target's ack over
   * the last 10 s (it acks once applied: its disk writes and durable records are in it).
   */
  link: { bandwidth_bps: number | null; rtt_ms: number | null; ack_rtt_ms: number | null; measured_rate_bps: number | null };
  retransmitted_bytes: number;
  /**
   * Link losses survived by reattaching the channel, and sessions continued from durable state after an agent restart (set by the source agent).
   * When there were earlier sessions (an agent restarted), the times and wire bytes above cover the whole migration:
   * times from its first start, wire bytes as the sum over sessions; `earlier_wire_bytes` is what the earlier sessions
   * moved, and `wire_bytes_exact` is false when a source process was killed (its bytes since its last checkpoint, at most
   * 2 s of transfer, are not counted). Block counts and the breakdown by reason cover the last session only.
   */
  resumes?: { reattached: number; resynced: number; sessions?: number; earlier_wire_bytes?: number; wire_bytes_exact?: boolean };
  /** zstd on DATA frames: block bytes before and after (equal when compression is off). */
  compression: { level: number | null; raw_bytes: number; wire_bytes: number; compressed_blocks: number };
  /** Content-id offers and what the target made from local content. */
  dedup: { offered_blocks: number; replica_blocks: number; reference_blocks: number; target: TargetDedupStats | null };
  /** Blocks (and their bytes) the target fetched from sibling hosts over the LAN instead of the WAN (datacenter-wide locator). */
  from_lan: { blocks: number; bytes: number };
  /**
   * CPU each agent's process used over the last session (process.cpuUsage: every thread, the
   * block-work pool's workers included), in seconds and in seconds per GiB of image; the target's
   * until it sent VERIFY (its hashing included), null from an agent that does not say. Both agents in
   * one process (the demo, tests) each count the whole process. `*_workers_busy_s`: how long the
   * block-work threads were busy (wall time, part of the CPU above; 0 with the work on the event loop).
   */
  cpu: { source_s: number; target_s: number | null; source_s_per_gib: number; target_s_per_gib: number | null; worker_threads: number; source_workers_busy_s: number; target_workers_busy_s: number | null };
}

export interface ReportInput {
  algorithm: Algorithm;
  features: Features;
  imageBytes: number;
  blockSize: number;
  verified: boolean;
  root: string;
  totalMs: number;
  precopyMs: number;
  downtimeMs: number;
  /** Whether the source went through a post-copy phase; the post-copy time is what follows the downtime, else 0. */
  enteredPostcopy: boolean;
  channel: ChannelStats;
  /** The channel's link bytes by what they carried (its ledger). */
  wire: WireBreakdown;
  counts: Record<string, number>;
  rounds: number;
  cutoverReason: string;
  targetStats: TargetStats;
  bandwidthBps: number | undefined;
  compressionLevel?: number | undefined;
  /** The source process's CPU seconds over the session, its block-work threads and their busy seconds. */
  cpu: { seconds: number; workerThreads: number; workersBusyS: number };
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

export type { WireBreakdown } from '../wire/wire-ledger.ts';

export function addWire(a: WireBreakdown, b: WireBreakdown): WireBreakdown {
  return { data: a.data + b.data, reference: a.reference + b.reference, zero: a.zero + b.zero, control: a.control + b.control };
}

export const wireTotal = (w: WireBreakdown): number => w.data + w.reference + w.zero + w.control;

/** What sessions before the last one (an agent restarted) spent, to fold into the last session's report. */
export interface EarlierSessions {
  /** Sessions before this one. */
  sessions: number;
  /** From the migration's first start to this session's start. */
  elapsedMs: number;
  /** Their wire bytes. */
  wire: WireBreakdown;
  /** False when a process ended without a final count (killed): its last checkpoint was used. */
  exact: boolean;
  /** Set when the cut-over happened in an earlier session: its pre-copy time (from the first start) and downtime. */
  cutover?: { precopyMs: number; downtimeMs: number };
}

/** The last session's report made to cover the whole migration (see MigrationReport.resumes). */
export function withEarlierSessions(r: MigrationReport, e: EarlierSessions): MigrationReport {
  const wire = addWire(r.wire_bytes_breakdown, e.wire);
  const total = r.time_total_s + e.elapsedMs / 1000;
  let precopy = r.time_precopy_s + e.elapsedMs / 1000;
  let downtime = r.downtime_ms;
  if (e.cutover) {
    precopy = e.cutover.precopyMs / 1000;
    downtime = e.cutover.downtimeMs;
  }
  const postcopy = r.algorithm === 'precopy' ? 0 : Math.max(0, total - precopy - downtime / 1000);
  return {
    ...r,
    time_total_s: r3(total),
    time_precopy_s: r3(precopy),
    time_postcopy_s: r3(postcopy),
    downtime_ms: Math.round(downtime * 10) / 10,
    wire_bytes: wireTotal(wire),
    wire_bytes_breakdown: wire,
    resumes: { reattached: r.resumes?.reattached ?? 0, resynced: r.resumes?.resynced ?? 0, sessions: e.sessions + 1, earlier_wire_bytes: wireTotal(e.wire), wire_bytes_exact: e.exact },
  };
}

export function buildReport(i: ReportInput): MigrationReport {
  const breakdown = i.wire;
  const wire = wireTotal(breakdown);
  const ts = i.targetStats;
  const readBlocks = ts.readBlocks;
  const misses = ts.missBlocks;
  const writeFetches = ts.writeMissBlocks ?? 0;
  const writeBlocks = ts.writeBlocks ?? 0;
  // Without a post-copy phase (pre-copy) the target has everything when it starts serving: what follows is verification.
  const postcopyMs = i.enteredPostcopy ? Math.max(0, i.totalMs - i.precopyMs - i.downtimeMs) : 0;
  const gib = Math.max(1, i.imageBytes) / 2 ** 30;
  return {
    algorithm: i.algorithm,
    features: { hot_order: i.features.hotOrder, prefetch: i.features.prefetch },
    image_bytes: i.imageBytes,
    block_size: i.blockSize,
    verified: i.verified,
    merkle_root: i.root,
    time_total_s: r3(i.totalMs / 1000),
    time_precopy_s: r3(i.precopyMs / 1000),
    time_postcopy_s: r3(postcopyMs / 1000),
    downtime_ms: Math.round(i.downtimeMs * 10) / 10,
    wire_bytes: wire,
    wire_bytes_breakdown: breakdown,
    blocks: {
      sent_data: num(i.counts.dataBlocks),
      sent_reference: num(i.counts.refBlocks),
      from_replica: num(i.counts.replicaBlocks),
      from_backing: num(i.counts.fromBackingBlocks),
      zero: num(i.counts.zeroBlocks),
      resent_dirty: num(i.counts.resentBlocks),
      demand: num(i.counts.demandBlocks),
      prefetch: num(i.counts.prefetchBlocks),
      push: num(i.counts.pushBlocks),
      stop_copy: num(i.counts.stopCopyBlocks),
      canceled_by_target_write: num(i.counts.canceledBlocks),
      // Demand fetches answered by moving a queued push or prefetch frame ahead, not by a second copy.
      demand_promoted: num(i.counts.promotedBlocks),
    },
    rounds: i.rounds,
    cutover_reason: i.cutoverReason,
    block_miss_rate: readBlocks ? Math.round((misses / readBlocks) * 1e6) / 1e6 : 0,
    misses,
    blocks_read_postcopy: readBlocks,
    write_fetches: writeFetches,
    blocks_written_postcopy: writeBlocks,
    demand_fetch_rate: readBlocks + writeBlocks ? Math.round(((misses + writeFetches) / (readBlocks + writeBlocks)) * 1e6) / 1e6 : 0,
    miss_latency_ms: { p50: ts.missP50 ?? null, p99: ts.missP99 ?? null, mean: ts.missMean ?? null },
    prefetch_requested: ts.prefetchRequested ?? 0,
    prefetch_by: { stream: ts.prefetchStreamBlocks ?? 0, area: ts.prefetchAreaBlocks ?? 0, co_access: ts.prefetchCoAccessBlocks ?? 0 },
    prefetch_hits: ts.prefetchHits ?? 0,
    prefetch_wasted_bytes: ts.prefetchWastedBytes ?? 0,
    link: { bandwidth_bps: i.bandwidthBps ?? null, rtt_ms: numOrNull(i.channel.minRttMs), ack_rtt_ms: numOrNull(i.channel.minAckRttMs), measured_rate_bps: numOrNull(i.channel.linkRateBps ?? i.channel.deliveryRateBps) },
    retransmitted_bytes: i.channel.retransmittedBytes,
    compression: {
      level: i.compressionLevel ?? null,
      raw_bytes: num(i.counts.dataRawBytes),
      wire_bytes: num(i.counts.dataWireBytes),
      compressed_blocks: num(i.counts.compressedBlocks),
    },
    dedup: {
      offered_blocks: num(i.counts.offeredBlocks),
      replica_blocks: num(i.counts.replicaBlocks),
      reference_blocks: num(i.counts.refBlocks),
      target: ts.dedup,
    },
    from_lan: { blocks: num(ts.dedup.local?.lan), bytes: num(ts.dedup.local?.lanBytes) },
    cpu: {
      source_s: r3(i.cpu.seconds),
      target_s: ts.cpuS === undefined ? null : r3(ts.cpuS),
      source_s_per_gib: r3(i.cpu.seconds / gib),
      target_s_per_gib: ts.cpuS === undefined ? null : r3(ts.cpuS / gib),
      worker_threads: i.cpu.workerThreads,
      source_workers_busy_s: r3(i.cpu.workersBusyS),
      target_workers_busy_s: ts.workersBusyS === undefined ? null : r3(ts.workersBusyS),
    },
  };
}
