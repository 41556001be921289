import { z } from 'zod';

// Any finite number: a counter that reads oddly must not fail the migration's last message.
const count = () => z.number();
/** A measure that exists only once there are samples (JSON drops undefined). */
const measure = () => z.number().optional();

/** What the target made from local content (dedup), and how its lookups went. */
export const TargetDedupStatsSchema = z.object({
  refBlocks: count(),
  refFromReceived: count(),
  refFromLocal: count(),
  refFallback: count(),
  offered: count(),
  offerHave: count(),
  compressedBlocks: count(),
  local: z.object({
    same: count(), received: count(), replica: count(), lookups: count(), staleEntries: count(), misses: count(),
    /** Blocks fetched from sibling hosts over the LAN (and their bytes), fetched but not the named content, not had. */
    lan: count().optional(), lanBytes: count().optional(), lanStale: count().optional(), lanFailed: count().optional(),
  }).optional(),
});

/**
 * The target's counters, as its status shows them and as VERIFY carries them
 * to the source for the report: phase and progress, blocks received by
 * reason, post-copy reads and misses with their latency, dedup, and prefetch
 * (present once prefetch ran).
 */
export const TargetStatsSchema = z.object({
  phase: z.string().max(32),
  blocks: count(),
  blockSize: count(),
  missingBlocks: count().optional(),
  /** Blocks received, by why they were sent (bulk, dirty, demand, ...). */
  receivedBlocks: z.record(z.string().max(32), count()),
  receivedBytes: count(),
  dedup: TargetDedupStatsSchema,
  // The post-copy disk's counters.
  readBlocks: count(),
  missBlocks: count(),
  claimedByWrite: count(),
  partialWriteFetches: count(),
  /** Optional: an older target does not count them (the report then says 0). */
  writeBlocks: count().optional(),
  writeMissBlocks: count().optional(),
  droppedData: count(),
  fetchRequests: count(),
  /** Miss latency (ms). */
  missP50: measure(),
  missP99: measure(),
  missMean: measure(),
  // The prefetcher's counters.
  prefetchRequested: count().optional(),
  prefetchStreamBlocks: count().optional(),
  prefetchAreaBlocks: count().optional(),
  prefetchCoAccessBlocks: count().optional(),
  prefetchHits: count().optional(),
  prefetchLate: count().optional(),
  prefetchWastedBytes: count().optional(),
  prefetchDroppedForBudget: count().optional(),
  prefetchOutstandingBytes: count().optional(),
  prefetchStreams: count().optional(),
  prefetchSequentialStreams: count().optional(),
  prefetchWindow: count().optional(),
  /** Target-clock time the VM was first served there. */
  servingAt: measure(),
  /** CPU seconds of the target's process over the session until VERIFY (every thread), and its block-work threads' busy seconds (absent from older agents). */
  cpuS: measure(),
  workersBusyS: measure(),
});
export type TargetStats = z.infer<typeof TargetStatsSchema>;
export type TargetDedupStats = z.infer<typeof TargetDedupStatsSchema>;
