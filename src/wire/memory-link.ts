/**
 * The one in-process link model on a clock, under both the test transport
 * pair (memory-transport.ts) and the simulator's link (sim/sim-link.ts).
 *
 * Each direction is a FIFO bottleneck: a write leaves when the previous one
 * has, after its serialisation time at the bandwidth (none when unlimited),
 * and arrives one-way delay later, as one buffer. The sender's buffer is
 * bounded: write() returns false at or above it, and a refused sender hears
 * onDrain once half of it has left, as with a socket. No loss, no reordering.
 *
 * Built for millions of writes (the simulator's): one entry per write, O(1)
 * per event (leave and arrive times are both monotonic along the FIFO), one
 * timer per direction, and departures only become events while a sender
 * waits for a drain. What a write's buffers become on arrival is the user's
 * choice (`MemoryLinkOptions`): a copy, or the simulator's content-model join.
 *
 * The WAN emulator (link/link.ts) models the same bottleneck differently; its
 * header says why.
 */
import { TransportEnd } from './transport-end.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';

export interface LinkModel {
  /** Bits per second; Infinity for unlimited. */
  bandwidthBps: number;
  /** One-way delay in ms. */
  delayMs: number;
  /** Bytes a sender may have queued before write() returns false (default 256 KiB). */
  sendBuffer?: number;
}

export const DEFAULT_SEND_BUFFER = 256 * 1024;

/** Turns the buffers of one write into the one buffer the far end receives (`n` bytes in all). */
export type JoinWrite = (parts: Buffer[], n: number) => Buffer;

export interface MemoryLinkOptions {
  /**
   * Keep the writer's buffers as they are until they arrive, instead of
   * copying them at write(): only for writers that never reuse a buffer they
   * wrote (the channel does not).
   */
  noCopy?: boolean;
  /** Makes one end's joiner (called once per end, so each end may keep its own buffers); default: concatenation. */
  joiner?: () => JoinWrite;
}

interface Entry {
  leaveAt: number;
  arriveAt: number;
  parts: Buffer[];
  n: number;
}

const concatWrite: JoinWrite = (parts, n) => (parts.length === 1 ? parts[0]! : Buffer.concat(parts, n));

export class MemoryLinkEnd extends TransportEnd {
  peer!: MemoryLinkEnd;
  private readonly fifo: Entry[] = [];
  /** fifo[head] is the first not yet arrived; fifo[leftUpTo] the first not yet left (as of the last settle). */
  private head = 0;
  private leftUpTo = 0;
  private busyUntil = 0;
  private queued = 0;
  /** The last write was refused: the sender waits for a drain. */
  private blocked = false;
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private readonly limit: number;
  private readonly copy: boolean;
  /** Makes what this end receives. */
  readonly join: JoinWrite;

  constructor(private readonly clock: Clock, private readonly model: LinkModel, options: MemoryLinkOptions = {}) {
    super();
    this.limit = model.sendBuffer ?? DEFAULT_SEND_BUFFER;
    this.copy = !options.noCopy;
    this.join = options.joiner ? options.joiner() : concatWrite;
  }

  write(parts: Buffer[]): boolean {
    if (this.closed) return false;
    let n = 0;
    for (const p of parts) n += p.length;
    const now = this.clock.now();
    this.settleLeft(now);
    const tx = Number.isFinite(this.model.bandwidthBps) ? (n * 8 * 1000) / this.model.bandwidthBps : 0;
    this.busyUntil = Math.max(this.busyUntil, now) + tx;
    this.fifo.push({ leaveAt: this.busyUntil, arriveAt: this.busyUntil + this.model.delayMs, parts: this.copy ? [Buffer.concat(parts, n)] : parts, n });
    this.queued += n;
    const ok = this.queued < this.limit;
    if (!ok) this.blocked = true;
    this.schedule();
    return ok;
  }

  /** Writes whose last bit has left by `now` no longer count against the send buffer. */
  private settleLeft(now: number): void {
    while (this.leftUpTo < this.fifo.length && this.fifo[this.leftUpTo]!.leaveAt <= now) {
      this.queued -= this.fifo[this.leftUpTo]!.n;
      this.leftUpTo++;
    }
  }

  /**
   * When a refused sender may write again: the departure that brings the
   * queue down to half the send buffer. Departures are only events while a
   * sender waits; otherwise they are settled lazily (an unblocked sender
   * would ignore the drain), which halves the events per write.
   */
  private drainAt(): number {
    if (!this.blocked) return Infinity;
    let q = this.queued;
    for (let i = this.leftUpTo; i < this.fifo.length; i++) {
      if (q <= this.limit / 2) return i === this.leftUpTo ? this.clock.now() : this.fifo[i - 1]!.leaveAt;
      q -= this.fifo[i]!.n;
    }
    return this.fifo.length > this.leftUpTo ? this.fifo[this.fifo.length - 1]!.leaveAt : this.clock.now();
  }

  private nextEventAt(): number {
    let t = this.drainAt();
    if (this.head < this.fifo.length) t = Math.min(t, this.fifo[this.head]!.arriveAt);
    return t;
  }

  private schedule(): void {
    const next = this.nextEventAt();
    if (next === Infinity || next >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = next;
    this.timer = this.clock.setTimer(Math.max(0, next - this.clock.now()), () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.tick();
    });
  }

  private tick(): void {
    const now = this.clock.now();
    this.settleLeft(now);
    while (this.head < this.leftUpTo && this.fifo[this.head]!.arriveAt <= now) {
      const e = this.fifo[this.head]!;
      this.fifo[this.head++] = undefined as unknown as Entry;
      if (!this.closed) this.peer.deliver(this.peer.join(e.parts, e.n));
    }
    // Compact now and then: the FIFO holds at most a window's worth of writes.
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.leftUpTo -= this.head;
      this.head = 0;
    }
    if (this.blocked && this.queued <= this.limit / 2) {
      this.blocked = false;
      this.drained();
    }
    this.schedule();
  }

  close(): void {
    this.cut();
  }

  /** Both ends learn the link is gone (with `err`, if given); bytes in flight are lost, as with a cut cable. */
  cut(err?: Error): void {
    if (this.closed) return;
    this.timer?.cancel();
    this.peer.timer?.cancel();
    this.closeBoth(this.peer, err);
  }
}

/** A connected pair of ends with the same model each way. */
export function memoryLinkPair(clock: Clock, model: LinkModel, options: MemoryLinkOptions = {}): [MemoryLinkEnd, MemoryLinkEnd] {
  const a = new MemoryLinkEnd(clock, model, options);
  const b = new MemoryLinkEnd(clock, model, options);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
