/**
 * Time, passed in. The link model never reads a clock of its own: the real
 * proxy gives it `realClock`, tests and the simulator a `ManualClock` whose
 * time moves only when told to. Times are milliseconds as floats.
 */

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Current time in ms (any origin; only differences matter). */
  now(): number;
  /** Runs `fn` once, `ms` from now (at the earliest). */
  setTimer(ms: number, fn: () => void): Timer;
}

/**
 * Wall-clock time from performance.now() and setTimeout. Node's timers have
 * 1 ms resolution and count from the event loop's cached, truncated time, so
 * a bare setTimeout(ms) fires anywhere from about 1 ms early to a little late;
 * asking for ms + 0.5 centres that spread on the target. A timer for 0 or
 * less runs at setImmediate (a setTimeout would wait at least 1 ms). Callers
 * still compare against now() when they wake (and wait again if early).
 */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    if (!(ms > 0)) {
      const i = setImmediate(fn);
      return { cancel: () => clearImmediate(i) };
    }
    const t = setTimeout(fn, ms + 0.5);
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * A clock that only moves when advanced. Timers due at the same time run in
 * the order they were set; a timer set by a running timer for "now" runs in
 * the same advance.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Array<{ at: number; seq: number; fn: () => void; live: boolean }> = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.timers.push(entry);
    return { cancel: () => void (entry.live = false) };
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.timers.filter((x) => x.live).length;
  }

  /** When the earliest pending timer is due (Infinity when none). */
  nextAt(): number {
    let best = Infinity;
    for (const x of this.timers) if (x.live && x.at < best) best = x.at;
    return best;
  }

  /** Moves time forward by `ms`, running every timer that comes due on the way at its own time. */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      this.timers = this.timers.filter((x) => x.live);
      let next: (typeof this.timers)[number] | undefined;
      for (const x of this.timers) {
        if (x.at <= target && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      }
      if (!next) break;
      next.live = false;
      if (next.at > this.t) this.t = next.at;
      next.fn();
    }
    if (target > this.t) this.t = target;
  }

  /** Runs timers until none is left (or `limit` ms have passed). */
  runAll(limitMs = 3_600_000): void {
    const end = this.t + limitMs;
    while (this.nextAt() <= end) this.advanceTo(this.nextAt());
  }
}
