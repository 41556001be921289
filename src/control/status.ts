/**
 * Completes raw agent/engine status objects into `AgentStatus` (progress, ETA,
 * observed transfer rate, miss rate; the ControlServer does this on every
 * request).
 */
import type { AgentRole, AgentStatus } from './types.ts';

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Rate of a growing byte counter over a sliding window, in bits/s. Sampled
 * whenever someone asks for status, so it needs no timer of its own.
 */
export class RateMeter {
  private readonly samples: Array<{ t: number; bytes: number }> = [];

  constructor(private readonly windowMs = 5000, private readonly minSpanMs = 200) {}

  /** Records `bytes` (a running total) at `nowMs`; returns the rate, or null until two samples span minSpanMs. */
  sample(nowMs: number, bytes: number): number | null {
    const s = this.samples;
    const last = s[s.length - 1];
    if (last && (bytes < last.bytes || nowMs < last.t)) s.length = 0; // counter reset (new link): start over
    s.push({ t: nowMs, bytes });
    // Drop samples older than the window, but keep one so a slow scraper still gets a rate.
    while (s.length > 2 && (nowMs - s[1]!.t >= this.windowMs || s.length > 4096)) s.shift();
    const first = s[0]!;
    const span = nowMs - first.t;
    if (span < this.minSpanMs) return null;
    return ((bytes - first.bytes) * 8 * 1000) / span;
  }
}

const numOrUndef = (v: unknown): number | undefined => (finite(v) ? v : undefined);

function etaFrom(remainingBlocks: number | undefined, blockSize: number | undefined, rateBps: number | null | undefined): number | null {
  if (remainingBlocks === undefined || blockSize === undefined) return null;
  if (remainingBlocks === 0) return 0;
  if (!finite(rateBps) || rateBps <= 0) return null;
  return Math.round(((remainingBlocks * blockSize * 8) / rateBps) * 10) / 10;
}

export interface StatusEnricherOptions {
  role?: AgentRole;
  /** Milliseconds clock for the rate meter (default performance.now). */
  now?: () => number;
  /** Block size when the raw status does not carry it (the target engine's does not). */
  blockSize?: number;
}

/**
 * Returns a function that completes a raw agent/engine status into an
 * AgentStatus: `progress`, `etaSeconds`, `transferRateBps`, `remainingBlocks`,
 * `blockMissRate`, filled in only where the raw status lacks them (a field
 * already present is never overwritten, so enriching twice is harmless).
 * It understands both engines' shapes: the source's `remainingBlocks`,
 * `blocks`, `blockSize`, `wireBytes`; the target's `missingBlocks` (post-copy
 * only), `receivedBytes`, `readBlocks`, `missBlocks`. Stateful: the transfer
 * rate is measured between calls over a sliding window.
 */
export function createStatusEnricher(o: StatusEnricherOptions = {}): (raw: Record<string, unknown>) => AgentStatus {
  const meter = new RateMeter();
  const now = o.now ?? (() => performance.now());
  return (raw) => {
    const phase = typeof raw.phase === 'string' ? raw.phase : 'unknown';
    const out: AgentStatus = { ...raw, phase };
    if (out.role === undefined && o.role) out.role = o.role;
    const has = (k: string) => raw[k] !== undefined;
    const blocks = numOrUndef(raw.blocks);
    const blockSize = numOrUndef(raw.blockSize) ?? o.blockSize;
    if (!has('blockSize') && blockSize !== undefined) out.blockSize = blockSize;
    // Before cut-over the source's remaining set is what still has to cross (it grows with
    // dirtying), after it the push set; the target knows its missing set only in post-copy.
    const remaining = numOrUndef(raw.remainingBlocks) ?? numOrUndef(raw.missingBlocks);
    if (!has('remainingBlocks')) out.remainingBlocks = remaining ?? null;
    const counter = numOrUndef(raw.wireBytes) ?? numOrUndef(raw.receivedBytes);
    if (!has('transferRateBps')) out.transferRateBps = counter !== undefined ? meter.sample(now(), counter) : null;
    if (!has('progress')) {
      out.progress = phase === 'done' ? 1 : blocks && remaining !== undefined ? Math.max(0, Math.min(1, 1 - remaining / blocks)) : null;
    }
    if (!has('etaSeconds')) {
      const rate = finite(out.transferRateBps) && out.transferRateBps > 0 ? out.transferRateBps : numOrUndef(raw.linkRateBps);
      out.etaSeconds = phase === 'done' ? 0 : phase === 'failed' ? null : etaFrom(remaining, blockSize, rate);
    }
    if (!has('blockMissRate')) {
      const reads = numOrUndef(raw.readBlocks);
      const misses = numOrUndef(raw.missBlocks);
      out.blockMissRate = reads && misses !== undefined ? Math.round((misses / reads) * 1e6) / 1e6 : reads === 0 ? 0 : null;
    }
    return out;
  };
}
