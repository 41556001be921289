import type { Algorithm } from './algorithm.ts';

/** Tunables of the cut-over decision; defaults in DEFAULT_CUTOVER_CONFIG. */
export interface CutoverConfig {
  /** Stop-and-copy is acceptable once the rest fits in this window (QEMU's max-downtime is 300 ms). */
  downtimeBudgetMs: number;
  /** Most dirty rounds after the bulk pass before cut-over is forced. */
  maxRounds: number;
  /** For hybrid algorithms: a round must shrink the remaining set by at least this share to be worth another. */
  minShrink: number;
  /** For precopy: rounds in a row with less than this shrink count as not converging. */
  stallShrink: number;
  stallRounds: number;
}

export const DEFAULT_CUTOVER_CONFIG: Record<Algorithm, CutoverConfig> = {
  precopy: { downtimeBudgetMs: 300, maxRounds: 30, minShrink: 0, stallShrink: 0.05, stallRounds: 3 },
  hybrid: { downtimeBudgetMs: 300, maxRounds: 5, minShrink: 0.3, stallShrink: 0.05, stallRounds: 3 },
  flimcd: { downtimeBudgetMs: 300, maxRounds: 5, minShrink: 0.3, stallShrink: 0.05, stallRounds: 3 },
  postcopy: { downtimeBudgetMs: 300, maxRounds: 0, minShrink: 1, stallShrink: 0.05, stallRounds: 3 },
};

export interface RoundState {
  algorithm: Algorithm;
  /** Rounds completed so far; the bulk pass is round 0. */
  roundsDone: number;
  /** Bytes whose current content the target does not have, now. */
  remainingBytes: number;
  /** remainingBytes at the end of each earlier round, oldest first. */
  history: number[];
  /** Throughput the link achieves, bytes per second (measured, else configured). */
  linkBytesPerSec: number;
  /** Bytes newly dirtied per second over the last round. */
  dirtyBytesPerSec: number;
  /**
   * The link's round trip (ms; 0 when unknown). The downtime of a stop-and-copy is not only the rest
   * over the link: CUTOVER's trip and its answer's count too, and the VM keeps writing while the
   * source drains the link before the hold (about one round trip), which adds to the rest.
   */
  rttMs?: number;
  config: CutoverConfig;
}

export type CutoverDecision = { cutover: false } | { cutover: true; reason: string };

/**
 * When to stop pre-copy (pure; no clocks or I/O). Pre-copy ends in
 * stop-and-copy once the rest fits the downtime budget or the rounds stop
 * converging. Hybrid algorithms cut over as soon as another round would not
 * shrink the remaining set enough: post-copy moves the rest once, while
 * another round would resend blocks the VM keeps dirtying.
 */
export function decideCutover(s: RoundState): CutoverDecision {
  const c = s.config;
  if (s.algorithm === 'postcopy') return { cutover: true, reason: 'post-copy cuts over at once' };
  const rtt = s.rttMs ?? 0;
  const restBytes = s.remainingBytes + s.dirtyBytesPerSec * (rtt / 1000);
  const restMs = s.linkBytesPerSec > 0 ? rtt + (restBytes / s.linkBytesPerSec) * 1000 : Infinity;
  if (s.remainingBytes === 0 || restMs <= c.downtimeBudgetMs) {
    // No byte count in the words: blocks already queued on the link are not in remainingBytes, and a
    // "remaining 0 bytes" beside hundreds of blocks still missing at the target misleads (issue 21).
    return { cutover: true, reason: `the dirty set left to queue fits the ${c.downtimeBudgetMs} ms downtime budget` };
  }
  if (s.roundsDone > c.maxRounds) return { cutover: true, reason: `round limit (${c.maxRounds}) reached` };
  const prev = s.history.at(-1);
  if (s.algorithm === 'precopy') {
    const recent = [...s.history.slice(-c.stallRounds), s.remainingBytes];
    if (recent.length > c.stallRounds) {
      let stalled = true;
      for (let i = 1; i < recent.length; i++) if (recent[i]! < recent[i - 1]! * (1 - c.stallShrink)) stalled = false;
      if (stalled) return { cutover: true, reason: 'dirty set stopped shrinking: stop-and-copy' };
    }
    return { cutover: false };
  }
  // hybrid / flimcd: after the bulk pass, one more round only if it pays.
  if (prev !== undefined && s.remainingBytes > prev * (1 - c.minShrink)) {
    return { cutover: true, reason: `round shrank the dirty set by less than ${Math.round(c.minShrink * 100)} %` };
  }
  if (s.dirtyBytesPerSec >= s.linkBytesPerSec * (1 - c.minShrink)) {
    return { cutover: true, reason: 'the VM dirties data nearly as fast as the link moves it' };
  }
  return { cutover: false };
}
