/**
 * The arithmetic of the benchmarks' headline ratios, kept apart from the runs
 * so it can be checked by hand (test/bench/headline.test.ts). A ratio of
 * medians, a median of per-cell ratios and a pooled ratio answer different
 * questions and differ most when some cells have tiny denominators.
 */
import { median } from './stats.ts';

/** median(num) / median(den): one variant against another over repeated runs of the same case. */
export function ratioOfMedians(num: number[], den: number[]): number {
  return median(num) / median(den);
}

/** value / baseline, NaN when the baseline is not above 0 (nothing to compare against). */
export function ratioToBaseline(value: number, baseline: number): number {
  return baseline > 0 ? value / baseline : NaN;
}

/** The largest ratio (the worst, where lower is better) over workloads. */
export function worstRatio(ratios: number[]): number {
  return Math.max(...ratios);
}

/**
 * Median over cells of num/den, each cell weighing the same however few
 * samples its rate rests on. Cells without a finite numerator or a positive
 * finite denominator are left out; NaN when none is left.
 */
export function medianOfRatios(cells: ReadonlyArray<{ num: number | undefined; den: number | undefined }>): number {
  const rs: number[] = [];
  for (const { num, den } of cells) {
    if (num !== undefined && den !== undefined && Number.isFinite(num) && Number.isFinite(den) && den > 0) rs.push(num / den);
  }
  return rs.length ? median(rs) : NaN;
}

/** Events out of trials, summed over cells (e.g. misses out of reads). */
export interface Pool {
  events: number;
  trials: number;
}

/** Sums cells into one pool, leaving out cells whose counts are not finite. */
export function pool(cells: ReadonlyArray<{ events: number; trials: number }>): Pool {
  const p = { events: 0, trials: 0 };
  for (const c of cells) {
    if (Number.isFinite(c.events) && Number.isFinite(c.trials)) {
      p.events += c.events;
      p.trials += c.trials;
    }
  }
  return p;
}

/** events / trials of a pool, NaN when it has no trials. */
export function pooledRate(p: Pool): number {
  return p.trials > 0 ? p.events / p.trials : NaN;
}

/** Pooled rate against pooled rate: every trial weighs once, whichever cell it came from. */
export function pooledRatio(num: Pool, den: Pool): number {
  return pooledRate(num) / pooledRate(den);
}
