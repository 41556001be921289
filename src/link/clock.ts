/**
 * Time, passed in. The link model never reads a clock of its own: the real
 * proxy gives it `realClock`, tests and the simulator a `ManualClock` whose
 * time moves only when told to. Times are milliseconds as floats.
 */

import type { Clock, TimerHandle } from '../util/clock.ts';

/** One Clock interface for the engines and the link (util/clock.ts); this file adds the link's own clocks. */
export type { Clock, TimerHandle as Timer };

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
 * A clock that only moves when advanced (tests, simulation). Timers due at
 * the same time run in the order they were set; a timer set by a running
 * timer for "now" runs in the same advance. Timers live in a binary heap, so
 * many thousands of them cost O(log n) each.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private live = 0;
  private heap: Array<{ at: number; seq: number; fn: () => void; live: boolean }> = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.push(entry);
    this.live++;
    return {
      cancel: () => {
        if (!entry.live) return;
        entry.live = false;
        this.live--;
      },
    };
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.live;
  }

  /** When the earliest pending timer is due (Infinity when none). */
  nextAt(): number {
    this.prune();
    return this.heap[0]?.at ?? Infinity;
  }

  /** Moves time forward by `ms`, running every timer that comes due on the way at its own time. */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      this.prune();
      const next = this.heap[0];
      if (!next || next.at > target) break;
      this.pop();
      next.live = false;
      this.live--;
      if (next.at > this.t) this.t = next.at;
      next.fn();
    }
    if (target > this.t) this.t = target;
  }

  /** Runs timers until none is left (or `limitMs` have passed). */
  runAll(limitMs = 3_600_000): void {
    const end = this.t + limitMs;
    while (this.nextAt() <= end) this.advanceTo(this.nextAt());
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

  private push(e: (typeof this.heap)[number]): void {
    this.heap.push(e);
    for (let i = this.heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

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
