/**
 * One way to say and compute a percentile, for every measure that reports
 * one (miss latency, the channel's link rate, the workload's latencies):
 * `p` from 0 to 100, nearest-rank definition (the smallest value with at
 * least p % of the values at or below it), so p50 and p99 mean the same
 * thing in a status, a report and a benchmark's table.
 */

/** A percentile from 0 to 100: 50 is the median, 99 the 99th percentile. */
export type Percentile = number;

/** Something that answers percentiles of what it has recorded; undefined while it has recorded nothing. */
export interface PercentileSource {
  readonly count: number;
  percentile(p: Percentile): number | undefined;
}

/** The 1-based rank of the p-th percentile among `n` (> 0) ordered values (nearest rank). */
export function percentileRank(n: number, p: Percentile): number {
  return Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
}

/** The p-th percentile of `values` (in any order); undefined when there are none. */
export function percentileOf(values: readonly number[], p: Percentile): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[percentileRank(sorted.length, p) - 1];
}
