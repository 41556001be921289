/**
 * A full-duplex WAN link on a clock: two LinkDirections (each with the full
 * bandwidth and rtt/2 of delay), one timer for the whole link, bounded
 * buffers with back-pressure, and live faults (stall, rate/delay change).
 * No sockets: what goes in and comes out are opaque items with a length
 * (the proxy's socket reads, from many connections).
 *
 * Why not the in-process link model (wire/memory-link.ts) that the test
 * transports and the simulator share: that one carries one transport's
 * writes whole, with a rate and delay fixed for the link's life, and is
 * exact on a virtual clock. This one sits between real sockets, so it cuts
 * traffic into segments of about 1 ms (a rate or delay change, a stall, and
 * the bandwidth share between connections take effect within a segment, not
 * after a 64 KiB read), bounds each direction by the bandwidth-delay product
 * plus a queue (as a router's buffer, not a socket's), and wakes with a
 * tolerance because real timers fire up to ~1 ms off.
 */
import type { Clock, TimerHandle } from '../util/clock.ts';
import { LinkDirection, type Segment } from './schedule.ts';

export type { Segment } from './schedule.ts';

/** `forward`: from the side that connects (the proxy's listen side) toward the side connected to; `reverse`: back. */
export type Direction = 'forward' | 'reverse';
export const DIRECTIONS: readonly Direction[] = ['forward', 'reverse'];

export interface LinkSettings {
  bandwidthBps: number;
  rttMs: number;
}

export interface WanLinkOptions<T> extends LinkSettings {
  clock: Clock;
  /**
   * Queue allowed per direction beyond what is propagating (the one-way
   * bandwidth-delay product). Default: max(256 KiB, one rtt (at least 20 ms) of bandwidth).
   */
  queueBytes?: number;
  /** Fixed segment size (tests); default about 1 ms of serialisation. */
  segmentBytes?: number;
  /**
   * A wake-up delivers segments due up to this many ms in the future
   * (default 0, exact). Real timers fire within about ±1 ms of their target;
   * the proxy uses 0.5 so departures are centred on the target instead of late.
   */
  toleranceMs?: number;
  /** Receives the segments that left the far end, in order, per direction. */
  deliver: (dir: Direction, segments: Array<Segment<T>>) => void;
  /** Called when a direction that refused more (send() returned false) has drained to its low-water mark. */
  onDrain?: (dir: Direction) => void;
}

export interface DirectionStats {
  /** Bytes put on the link. */
  bytesIn: number;
  /** Bytes that left the far end (what a wire-byte count measures). */
  bytesOut: number;
  /** Bytes held now (queued + propagating). */
  heldBytes: number;
  /** Peak of heldBytes since start. */
  maxHeldBytes: number;
  /** Bytes not yet serialised. */
  backlogBytes: number;
  /**
   * send() says stop above this many held bytes: one-way BDP + queueBytes.
   * Each sender may overshoot it by the one send() that crossed it (for the
   * proxy: one socket read, at most 64 KiB, per connection sending).
   */
  boundBytes: number;
  /** True while the direction is over its bound and waiting to drain. */
  blocked: boolean;
}

export interface LinkStats extends LinkSettings {
  queueBytes: number;
  /** Milliseconds of stall left (0 when not stalled). */
  stalledForMs: number;
  forward: DirectionStats;
  reverse: DirectionStats;
}

export function defaultQueueBytes(s: LinkSettings): number {
  return Math.max(256 * 1024, Math.ceil((s.bandwidthBps / 8000) * Math.max(s.rttMs, 20)));
}

export function checkLinkSettings(s: Partial<LinkSettings>): void {
  if (s.bandwidthBps !== undefined && !(s.bandwidthBps > 0 && Number.isFinite(s.bandwidthBps))) {
    throw new RangeError(`bandwidth must be a positive number of bits/s, got ${s.bandwidthBps}`);
  }
  if (s.rttMs !== undefined && !(s.rttMs >= 0 && Number.isFinite(s.rttMs))) {
    throw new RangeError(`rtt must be a finite number of ms >= 0, got ${s.rttMs}`);
  }
}

interface Side<T> {
  model: LinkDirection<T>;
  bytesIn: number;
  bytesOut: number;
  maxHeld: number;
  blocked: boolean;
}

export class WanLink<T> {
  private readonly clock: Clock;
  private readonly deliver: WanLinkOptions<T>['deliver'];
  private readonly onDrain: WanLinkOptions<T>['onDrain'];
  private settings: LinkSettings;
  private readonly fixedQueue: number | undefined;
  private queue: number;
  private readonly sides: Record<Direction, Side<T>>;
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private closed = false;
  private readonly tolerance: number;

  constructor(opts: WanLinkOptions<T>) {
    checkLinkSettings(opts);
    if (opts.queueBytes !== undefined && !(Number.isInteger(opts.queueBytes) && opts.queueBytes > 0)) {
      throw new RangeError(`queueBytes must be a positive integer, got ${opts.queueBytes}`);
    }
    this.clock = opts.clock;
    this.deliver = opts.deliver;
    this.onDrain = opts.onDrain;
    this.settings = { bandwidthBps: opts.bandwidthBps, rttMs: opts.rttMs };
    this.fixedQueue = opts.queueBytes;
    this.tolerance = opts.toleranceMs ?? 0;
    this.queue = opts.queueBytes ?? defaultQueueBytes(this.settings);
    const side = (): Side<T> => ({
      model: new LinkDirection<T>({ bandwidthBps: opts.bandwidthBps, delayMs: opts.rttMs / 2, ...(opts.segmentBytes ? { segmentBytes: opts.segmentBytes } : {}) }),
      bytesIn: 0,
      bytesOut: 0,
      maxHeld: 0,
      blocked: false,
    });
    this.sides = { forward: side(), reverse: side() };
  }

  get link(): LinkSettings {
    return { ...this.settings };
  }

  /** Held bytes above which send() asks the sender to stop. */
  boundBytes(): number {
    return Math.ceil((this.settings.bandwidthBps / 8000) * (this.settings.rttMs / 2)) + this.queue;
  }

  /**
   * Puts `length` bytes of `item` on the link now. Returns false when the
   * direction is over its bound: the sender should stop until onDrain(dir).
   * (It is not refused; the bound is a request, as with a stream's write().)
   */
  send(dir: Direction, item: T, length: number): boolean {
    if (this.closed) return false;
    const s = this.sides[dir];
    s.model.enqueue(this.clock.now(), item, length);
    s.bytesIn += length;
    const held = s.model.heldBytes;
    if (held > s.maxHeld) s.maxHeld = held;
    this.arm();
    if (held > this.boundBytes()) s.blocked = true;
    return !s.blocked;
  }

  /** Stops both directions for `ms` (bytes wait, none are lost). */
  stall(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms))) throw new RangeError(`stall duration must be a finite number of ms >= 0, got ${ms}`);
    const now = this.clock.now();
    for (const d of DIRECTIONS) this.sides[d].model.stall(now, ms);
    this.rearm();
  }

  /** Changes bandwidth and/or rtt from now on, both directions. */
  setLink(change: Partial<LinkSettings>): LinkSettings {
    checkLinkSettings(change);
    const now = this.clock.now();
    for (const d of DIRECTIONS) {
      const m = this.sides[d].model;
      if (change.bandwidthBps !== undefined) m.setRate(now, change.bandwidthBps);
      if (change.rttMs !== undefined) m.setDelay(now, change.rttMs / 2);
    }
    this.settings = { bandwidthBps: change.bandwidthBps ?? this.settings.bandwidthBps, rttMs: change.rttMs ?? this.settings.rttMs };
    if (this.fixedQueue === undefined) this.queue = defaultQueueBytes(this.settings);
    this.rearm();
    this.checkDrains();
    return this.link;
  }

  /** Removes held bytes whose item matches, both directions (their connection is gone). Returns bytes removed. */
  drop(match: (item: T) => boolean): number {
    const now = this.clock.now();
    let n = 0;
    for (const d of DIRECTIONS) n += this.sides[d].model.drop(now, match);
    this.rearm();
    this.checkDrains();
    return n;
  }

  stats(): LinkStats {
    const now = this.clock.now();
    const bound = this.boundBytes();
    const dir = (d: Direction): DirectionStats => {
      const s = this.sides[d];
      s.model.advance(now);
      return { bytesIn: s.bytesIn, bytesOut: s.bytesOut, heldBytes: s.model.heldBytes, maxHeldBytes: s.maxHeld, backlogBytes: Math.round(s.model.backlogBytes), boundBytes: bound, blocked: s.blocked };
    };
    return {
      ...this.settings,
      queueBytes: this.queue,
      stalledForMs: Math.max(0, this.sides.forward.model.stalledUntil - now),
      forward: dir('forward'),
      reverse: dir('reverse'),
    };
  }

  /** Drops everything held and stops the timer; send() is refused from now on. */
  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
    for (const d of DIRECTIONS) this.sides[d].model.drop(this.clock.now(), () => true);
  }

  private nextDue(): number {
    return Math.min(this.sides.forward.model.nextDueAt(), this.sides.reverse.model.nextDueAt());
  }

  /** Arms the one timer for the earliest departure, unless it is already armed for that time or earlier. */
  private arm(): void {
    if (this.closed) return;
    const next = this.nextDue();
    if (next === Infinity || (this.timer && this.timerAt <= next)) return;
    this.timer?.cancel();
    this.timerAt = next;
    const wait = next - this.clock.now();
    // Due within the tolerance: wake as soon as possible rather than a whole timer tick later.
    this.timer = this.clock.setTimer(wait <= this.tolerance ? 0 : wait, () => this.wake());
  }

  /** Like arm() but also moves the timer later when the next departure moved later (after a stall or drop). */
  private rearm(): void {
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
    this.arm();
  }

  private wake(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    const now = this.clock.now();
    for (const d of DIRECTIONS) {
      const s = this.sides[d];
      const due = s.model.takeDue(now, now + this.tolerance);
      if (due.length === 0) continue;
      for (const seg of due) s.bytesOut += seg.length;
      this.deliver(d, due);
      if (this.closed) return;
    }
    this.checkDrains();
    this.arm();
  }

  private checkDrains(): void {
    const low = this.boundBytes() - this.queue / 2;
    for (const d of DIRECTIONS) {
      const s = this.sides[d];
      if (s.blocked && s.model.heldBytes <= low) {
        s.blocked = false;
        this.onDrain?.(d);
      }
    }
  }
}
