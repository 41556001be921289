/**
 * A planner's prediction of a migration (src/sim/planner.ts, `flimcd plan`),
 * shown in the source agent's status with the ETA it gives.
 */
import type { Algorithm } from '../policy/algorithm.ts';

export interface Prediction {
  algorithm: Algorithm;
  time_total_s: number;
  wire_bytes: number;
}

/** Status fields: the prediction, and the ETA it gives after `elapsedMs`. */
export function predictedStatus(p: Prediction, elapsedMs: number, phase: string): { prediction: Prediction; etaSeconds: number | null } {
  if (phase === 'failed') return { prediction: p, etaSeconds: null };
  if (phase === 'done') return { prediction: p, etaSeconds: 0 };
  return { prediction: p, etaSeconds: Math.round(Math.max(0, p.time_total_s - elapsedMs / 1000) * 10) / 10 };
}
