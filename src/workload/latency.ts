/**
 * A log-bucketed latency histogram: bounded memory at any op count, exact
 * count/mean/max, percentiles within 1 % relative error (buckets grow by 2 %,
 * a percentile reports its bucket's geometric middle) from 1 µs to ~1 hour.
 */
import { percentileRank, type Percentile, type PercentileSource } from '../util/percentile.ts';

const MIN_MS = 0.001;
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(3_600_000 / MIN_MS) / LOG_GROWTH) + 2;

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class LatencyHistogram implements PercentileSource {
  private readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  private sum = 0;
  private max = 0;

  record(ms: number): void {
    const v = ms > MIN_MS ? ms : MIN_MS;
    const b = Math.min(BUCKETS - 1, Math.floor(Math.log(v / MIN_MS) / LOG_GROWTH));
    this.counts[b]!++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  get count(): number {
    return this.n;
  }

  /** The p-th percentile in ms (the middle of its bucket, never above the maximum); undefined when empty. */
  percentile(p: Percentile): number | undefined {
    if (this.n === 0) return undefined;
    const rank = percentileRank(this.n, p);
    let acc = 0;
    for (let b = 0; b < BUCKETS; b++) {
      acc += this.counts[b]!;
      if (acc >= rank) return Math.min(this.max, MIN_MS * Math.pow(GROWTH, b + 0.5));
    }
    return this.max;
  }

  summary(): LatencySummary {
    return {
      count: this.n,
      meanMs: this.n ? this.sum / this.n : 0,
      p50Ms: this.percentile(50) ?? 0,
      p99Ms: this.percentile(99) ?? 0,
      maxMs: this.max,
    };
  }
}
