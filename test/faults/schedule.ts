/**
 * Seeded fault schedules: which algorithm, how fast a link, and a few faults
 * (link cut, stall, added delay, kill -9 of either agent), each set off a
 * random time after the migration enters a phase. The same seed always gives
 * the same schedule, so a failing one can be replayed.
 */
import { Prng } from '../../src/workload/prng.ts';
import { hasPostcopy, type Algorithm } from '../../src/policy/algorithm.ts';

export type FaultKind = 'cut' | 'stall' | 'delay' | 'kill-source' | 'kill-target';
export type FaultPhase = 'precopy' | 'cutover' | 'postcopy';

export interface FaultEvent {
  /** Set off once the source reports this phase... */
  phase: FaultPhase;
  /** ...this long after. */
  afterMs: number;
  kind: FaultKind;
  /** cut: how long new connections are refused; stall: how long nothing moves; delay: how long the extra RTT lasts; kill: how long the agent stays down. */
  ms: number;
  /** delay: the RTT while it lasts. */
  rttMs?: number;
}

export interface FaultSchedule {
  seed: number;
  algorithm: Algorithm;
  bandwidthBps: number;
  events: FaultEvent[];
}

export const FAULT_KINDS: readonly FaultKind[] = ['cut', 'stall', 'delay', 'kill-source', 'kill-target'];
const PHASE_ORDER: readonly FaultPhase[] = ['precopy', 'cutover', 'postcopy'];

export function phaseIndex(p: string): number {
  const i = PHASE_ORDER.indexOf(p as FaultPhase);
  return i >= 0 ? i : p === 'verify' || p === 'done' ? PHASE_ORDER.length : -1;
}

export function generateSchedule(seed: number): FaultSchedule {
  const rng = new Prng(seed * 7919 + 17);
  const algorithms: Algorithm[] = ['hybrid', 'flimcd', 'flimcd', 'postcopy', 'precopy', 'hybrid'];
  const algorithm = algorithms[rng.int(algorithms.length)]!;
  // 40–100 Mbit/s: a 16 MiB image takes a couple of seconds, long enough to hit every phase.
  const bandwidthBps = (40 + rng.int(61)) * 1e6;
  const phases: FaultPhase[] = hasPostcopy(algorithm) ? ['precopy', 'cutover', 'postcopy'] : ['precopy', 'cutover'];
  const count = 1 + rng.int(3);
  const events: FaultEvent[] = [];
  for (let i = 0; i < count; i++) {
    const phase = phases[rng.int(phases.length)]!;
    const kind = FAULT_KINDS[rng.int(FAULT_KINDS.length)]!;
    // Cut-over is short: strike within its first few milliseconds.
    const afterMs = phase === 'cutover' ? rng.int(20) : rng.int(700);
    const ms = kind === 'stall' ? 200 + rng.int(1300) : kind === 'delay' ? 300 + rng.int(1500) : rng.int(600);
    events.push({ phase, afterMs, kind, ms, ...(kind === 'delay' ? { rttMs: 50 + rng.int(200) } : {}) });
  }
  events.sort((a, b) => phaseIndex(a.phase) - phaseIndex(b.phase) || a.afterMs - b.afterMs);
  return { seed, algorithm, bandwidthBps, events };
}

export function describeSchedule(s: FaultSchedule): string {
  const ev = s.events.map((e) => `${e.kind}(${e.ms}ms${e.rttMs ? `, rtt ${e.rttMs}ms` : ''}) at ${e.phase}+${e.afterMs}ms`).join(', ');
  return `seed ${s.seed}: ${s.algorithm} at ${Math.round(s.bandwidthBps / 1e6)} Mbit/s; ${ev}`;
}
