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
