import type { Clock, TimerHandle } from '../util/clock.ts';
import { ProtocolError } from '../errors.ts';

export interface KeepaliveOptions {
  clock: Clock;
  intervalMs?: number;
  /**
   * Declare the link lost when nothing arrived for this long (default 15 s):
   * both sides ping every second, so silence means a dead path that TCP
   * itself would only notice after many minutes.
   */
  silenceTimeoutMs?: number;
  /** Sends one ping now. */
  ping: () => void;
  /** The link has been silent too long. */
  dead: (err: ProtocolError) => void;
  /** False once the link is gone or closed: a timer that fires late does nothing then. */
  linkUp: () => boolean;
}

/** Pings the peer every interval while a link is up, and declares the link dead when the peer goes silent. */
export class Keepalive {
  private timer: TimerHandle | undefined;
  private lastHeard = 0;

  constructor(private readonly o: KeepaliveOptions) {}

  /** A link is up: ping at once, then every interval. */
  start(): void {
    this.lastHeard = this.o.clock.now();
    this.timer?.cancel();
    this.schedule();
  }

  /** Something arrived from the peer. */
  heard(): void {
    this.lastHeard = this.o.clock.now();
  }

  stop(): void {
    this.timer?.cancel();
  }

  private schedule(): void {
    const every = this.o.intervalMs ?? 1000;
    this.o.ping();
    this.timer = this.o.clock.setTimer(every, () => {
      if (!this.o.linkUp()) return;
      const silent = this.o.clock.now() - this.lastHeard;
      const limit = this.o.silenceTimeoutMs ?? 15_000;
      if (silent > limit) return this.o.dead(new ProtocolError(`nothing heard from the peer for ${Math.round(silent)} ms (limit ${limit} ms): link presumed dead`));
      this.schedule();
    });
  }
}
