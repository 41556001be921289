/**
 * Time comes into engines, policies, the link models and the workload
 * executor from outside, so the same code runs on the wall clock (agents,
 * the WAN emulator) and on a virtual clock (simulator, tests). Times are
 * milliseconds as floats.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  /**
   * Lets everything else waiting on the event loop run once (a clock on the real event loop only):
   * a virtual clock's time moves when its driver says, and a real turn would escape its schedule.
   */
  yieldTurn?(): Promise<void>;
}

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

/**
 * Wall-clock time from performance.now() and Node timers. Node's timers have
 * 1 ms resolution and count from the event loop's cached, truncated time, so
 * a bare setTimeout(ms) fires anywhere from about 1 ms early to a little late;
 * asking for ms + 0.5 centres that spread on the target. A timer for 0 or
 * less runs at setImmediate (a setTimeout would wait at least 1 ms). Callers
 * that need a deadline compare against now() when they wake. Owners cancel
 * their timers on close.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  yieldTurn: () => new Promise<void>((resolve) => setImmediate(resolve)),
  setTimer(ms, fn) {
    if (!(ms > 0)) {
      const i = setImmediate(fn);
      return { cancel: () => clearImmediate(i) };
    }
    const t = setTimeout(fn, ms + 0.5);
    return { cancel: () => clearTimeout(t) };
  },
};

interface VirtualTimer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/**
 * A clock whose time moves only when told to (simulator, tests). Timers due
 * at the same time run in the order they were set; a timer set by a running
 * timer for "now" runs in the same advance. Timers live in a binary heap:
 * the simulator sets millions of them, so each costs O(log n).
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private live = 0;
  private readonly heap: VirtualTimer[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer: VirtualTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.push(timer);
    this.live++;
    return {
      cancel: () => {
        if (!timer.live) return;
        timer.live = false;
        this.live--;
      },
    };
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.live;
  }

  /** When the earliest pending timer is due; undefined when none is. */
  nextAt(): number | undefined {
    this.prune();
    return this.heap[0]?.at;
  }

  /** Fires the next timer (advancing time to it); false when none is left. */
  step(): boolean {
    this.prune();
    const next = this.heap[0];
    if (!next) return false;
    this.pop();
    next.live = false;
    this.live--;
    if (next.at > this.t) this.t = next.at;
    next.fn();
    return true;
  }

  /** Moves time forward by `ms`, running every timer that comes due on the way at its own time. */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  /** Moves time to `until`, running every timer due by then at its own time. */
  advanceTo(until: number): void {
    for (;;) {
      const at = this.nextAt();
      if (at === undefined || at > until) break;
      this.step();
    }
    if (until > this.t) this.t = until;
  }

  /** Runs timers until none is left (or `limitMs` have passed). */
  runAll(limitMs = 3_600_000): void {
    const end = this.t + limitMs;
    for (;;) {
      const at = this.nextAt();
      if (at === undefined || at > end) break;
      this.step();
    }
  }

  private prune(): void {
    while (this.heap.length && !this.heap[0]!.live) this.pop();
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private swap(i: number, j: number): void {
    const h = this.heap;
    [h[i], h[j]] = [h[j]!, h[i]!];
  }

  private push(timer: VirtualTimer): void {
    this.heap.push(timer);
    for (let i = this.heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the heap's top. */
  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(l, m)) m = l;
      if (r < h.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}
