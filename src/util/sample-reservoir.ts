/**
 * Samples of one measure (latencies, rates) with bounded memory: keeps every
 * sample up to `cap`, then a uniform reservoir, so percentiles stay honest on
 * long runs. Count and mean cover every sample.
 */
export class SampleReservoir {
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

  percentile(p: number): number | undefined {
    if (!this.samples.length) return undefined;
    const s = [...this.samples].sort((a, b) => a - b);
    const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
    return s[i];
  }
}
