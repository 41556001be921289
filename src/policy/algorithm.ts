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

/** Optimizations that can be switched on and off alone (ablation); the algorithm gives the defaults. */
export interface Features {
  /** Dirty-block dedup: content ids instead of data for content the target holds (REF, OFFER). */
  dedup: boolean;
  /** zstd per DATA frame. */
  compress: boolean;
  /** Pre-copy cold areas first and write-hot last; post-copy push read-hot first. */
  hotOrder: boolean;
  /** Prefetch around post-copy misses (streams, hot areas, co-access). */
  prefetch: boolean;
}

export const FEATURE_NAMES: Record<keyof Features, string> = { dedup: 'dedup', compress: 'zstd', hotOrder: 'hot-order', prefetch: 'prefetch' };

/** The algorithm's defaults (`flimcd` has everything on, the baselines nothing), then explicit overrides. */
export function resolveFeatures(a: Algorithm, overrides: Partial<Features> = {}): Features {
  const all = a === 'flimcd';
  const f: Features = { dedup: all, compress: all, hotOrder: all, prefetch: all };
  for (const k of Object.keys(f) as Array<keyof Features>) if (overrides[k] !== undefined) f[k] = overrides[k]!;
  return f;
}

/** Feature names as they travel in HELLO/WELCOME. */
export function featureList(f: Features): string[] {
  return (Object.keys(FEATURE_NAMES) as Array<keyof Features>).filter((k) => f[k]).map((k) => FEATURE_NAMES[k]);
}

/** Features named in a HELLO (unknown names are ignored: a newer peer may offer more). */
export function featuresFromList(names: readonly string[]): Features {
  const f: Features = { dedup: false, compress: false, hotOrder: false, prefetch: false };
  for (const k of Object.keys(FEATURE_NAMES) as Array<keyof Features>) f[k] = names.includes(FEATURE_NAMES[k]);
  return f;
}
