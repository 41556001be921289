import type { Clock } from './clock.ts';

/**
 * A loop whose awaits can all resolve at once (reads the page cache answers on the event loop, room
 * on the link, block work done in-thread) runs on the microtask queue only, and starves everything
 * else on the event loop for as long as it finds work: the VM's NBD requests, the link's acks and
 * control messages, timers. Measured: the pre-copy of a compressible 256 MiB image held the event
 * loop for three stretches of ~500 ms. Such a loop calls `pass()` each turn; once `sliceMs` of the
 * clock has gone by since the last yield it lets the event loop turn once (`Clock.yieldTurn`).
 * A virtual clock cannot yield: the loop runs as before.
 */
export class CpuSlice {
  private since: number;

  constructor(private readonly clock: Clock, private readonly sliceMs = 4) {
    this.since = clock.now();
  }

  /** Resolves at once inside the slice, after one event-loop turn past it. */
  async pass(): Promise<void> {
    if (!this.clock.yieldTurn || this.clock.now() - this.since < this.sliceMs) return;
    await this.clock.yieldTurn();
    this.since = this.clock.now();
  }
}
