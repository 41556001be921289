/**
 * Time comes into engines and policies from outside, so the same code runs on
 * the wall clock (agents) and on a virtual clock (simulator).
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

/** The real clock: performance.now() and Node timers. Owners cancel their timers on close. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * A virtual clock for tests and the simulator: time moves only when told to;
 * timers fire in time order (ties in creation order).
 */
export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers: Array<{ at: number; seq: number; fn: () => void; dead: boolean }> = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, dead: false };
    // Binary insert keeps the list sorted by (at, seq).
    let lo = 0;
    let hi = this.timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.timers[mid]!;
      if (m.at < timer.at || (m.at === timer.at && m.seq < timer.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.timers.splice(lo, 0, timer);
    return { cancel: () => { timer.dead = true; } };
  }

  /** Time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    while (this.timers.length && this.timers[0]!.dead) this.timers.shift();
    return this.timers[0]?.at;
  }

  /** Fires the next timer (advancing time to it); false when none is left. */
  step(): boolean {
    const at = this.nextAt();
    if (at === undefined) return false;
    const timer = this.timers.shift()!;
    this.t = Math.max(this.t, at);
    timer.fn();
    return true;
  }

  /** Advances to `until`, firing every timer due on the way. */
  advanceTo(until: number): void {
    for (;;) {
      const at = this.nextAt();
      if (at === undefined || at > until) break;
      this.step();
    }
    this.t = Math.max(this.t, until);
  }
}
