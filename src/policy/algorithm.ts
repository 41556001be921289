import { UsageError } from '../errors.ts';

export const ALGORITHMS = ['precopy', 'postcopy', 'hybrid', 'flimcd'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export function parseAlgorithm(s: string): Algorithm {
  if ((ALGORITHMS as readonly string[]).includes(s)) return s as Algorithm;
  throw new UsageError(`--algorithm: "${s}" is not one of ${ALGORITHMS.join(', ')}`);
}

/** Does the algorithm finish with post-copy (target serves before it has everything)? */
export function hasPostcopy(a: Algorithm): boolean {
  return a !== 'precopy';
}

/** Does it start with pre-copy rounds? */
export function hasPrecopy(a: Algorithm): boolean {
  return a !== 'postcopy';
}

/** What an algorithm turns on; each can be switched off alone for ablation. */
export interface Features {
  /** Dirty-block dedup: content ids instead of data for content the target holds (REF, OFFER). */
  dedup: boolean;
  /** zstd per DATA frame. */
  compress: boolean;
}

export interface FeatureSwitches {
  noDedup?: boolean;
  noCompress?: boolean;
}

/** Only `flimcd` has the optimizations; the baselines stay faithful to what they model. */
export function resolveFeatures(a: Algorithm, off: FeatureSwitches = {}): Features {
  const on = a === 'flimcd';
  return { dedup: on && !off.noDedup, compress: on && !off.noCompress };
}

/** HELLO feature names for the wire. */
export function featureNames(f: Features): string[] {
  const out: string[] = [];
  if (f.dedup) out.push('dedup');
  if (f.compress) out.push('zstd');
  return out;
}
