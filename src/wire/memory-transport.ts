import type { Clock } from '../util/clock.ts';
import { TransportEnd } from './transport-end.ts';

/**
 * A pair of connected in-process transports on a clock, with optional one-way
 * delay and bandwidth: for tests of the channel and for the simulator's link.
 * Bytes are delivered in order; a direction's capacity is serialised, so a
 * deep queue shows up as delay exactly as it would on a real bottleneck.
 */
export interface LinkModel {
  /** Bits per second; Infinity for unlimited. */
  bandwidthBps: number;
  /** One-way delay in ms. */
  delayMs: number;
  /** Bytes a sender may queue before write() returns false. */
  sendBuffer?: number;
}

class End extends TransportEnd {
  peer!: End;
  queued = 0;
  busyUntil = 0;
  bytesSent = 0;

  constructor(private readonly clock: Clock, private readonly model: LinkModel) {
    super();
  }

  write(parts: Buffer[]): boolean {
    if (this.closed) return false;
    const now = this.clock.now();
    for (const p of parts) {
      const n = p.length;
      const tx = Number.isFinite(this.model.bandwidthBps) ? (n * 8 * 1000) / this.model.bandwidthBps : 0;
      this.busyUntil = Math.max(this.busyUntil, now) + tx;
      this.queued += n;
      this.bytesSent += n;
      // One FIFO per direction and a single timer: order never depends on timer tie-breaking.
      this.pipe.push({ leaveAt: this.busyUntil, arriveAt: this.busyUntil + this.model.delayMs, buf: Buffer.from(p), n, left: false });
    }
    this.schedule();
    return this.queued < (this.model.sendBuffer ?? 256 * 1024);
  }

  private pipe: Array<{ leaveAt: number; arriveAt: number; buf: Buffer; n: number; left: boolean }> = [];
  private timer: { cancel(): void } | undefined;
  private timerAt = Infinity;

  private schedule(): void {
    const next = this.nextEventAt();
    if (next === undefined || next >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = next;
    this.timer = this.clock.setTimer(Math.max(0, next - this.clock.now()), () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.tick();
    });
  }

  private nextEventAt(): number | undefined {
    let next: number | undefined;
    for (const e of this.pipe) {
      const t = e.left ? e.arriveAt : e.leaveAt;
      if (next === undefined || t < next) next = t;
      if (!e.left) break; // later entries leave later still
    }
    return next;
  }

  private tick(): void {
    const now = this.clock.now();
    let drained = false;
    for (const e of this.pipe) {
      if (e.left || e.leaveAt > now) {
        if (!e.left) break;
        continue;
      }
      e.left = true;
      this.queued -= e.n;
      drained = true;
    }
    while (this.pipe.length && this.pipe[0]!.left && this.pipe[0]!.arriveAt <= now) {
      const e = this.pipe.shift()!;
      if (!this.closed) this.peer.deliver(e.buf);
    }
    if (drained && this.queued <= (this.model.sendBuffer ?? 256 * 1024) / 2) this.drained();
    this.schedule();
  }

  close(): void {
    this.cut();
  }

  /** Both ends learn the link is gone; bytes in flight are lost (as with a cut cable). */
  cut(err?: Error): void {
    this.closeBoth(this.peer, err);
  }
}

export function memoryLink(clock: Clock, model: LinkModel = { bandwidthBps: Infinity, delayMs: 0 }): [End, End] {
  const a = new End(clock, model);
  const b = new End(clock, model);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
export type MemoryTransport = End;
