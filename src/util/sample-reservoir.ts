/**
 * Samples of one measure (latencies, rates) with bounded memory: keeps every
 * sample up to `cap`, then a uniform reservoir, so percentiles stay honest on
 * long runs. Count and mean cover every sample.
 */
import { percentileOf, type Percentile, type PercentileSource } from './percentile.ts';

export class SampleReservoir implements PercentileSource {
  private readonly samples: number[] = [];
  private seen = 0;
  private sum = 0;
  private rng = 0x12345678;

  constructor(private readonly cap = 100_000) {}

  record(value: number): void {
    this.seen++;
    this.sum += value;
    if (this.samples.length < this.cap) this.samples.push(value);
    else {
      this.rng = (Math.imul(this.rng, 1103515245) + 12345) >>> 0;
      const j = this.rng % this.seen;
      if (j < this.cap) this.samples[j] = value;
    }
  }

  get count(): number {
    return this.seen;
  }

  get mean(): number | undefined {
    return this.seen ? this.sum / this.seen : undefined;
  }

  percentile(p: Percentile): number | undefined {
    return percentileOf(this.samples, p);
  }
}
