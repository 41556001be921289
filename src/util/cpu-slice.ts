/**
 * A loop whose awaits can all resolve at once (reads the page cache answers on the event loop, room
 * on the link, block work done in-thread) runs on the microtask queue only, and starves everything
 * else on the event loop for as long as it finds work: the VM's NBD requests, the link's acks and
 * control messages, timers. Measured: the pre-copy of a compressible 256 MiB image held the event
 * loop for three stretches of ~500 ms. Such a loop calls `pass()` each turn; once `sliceMs` of the
 * clock has gone by since the last yield it waits one turn of the event loop (setImmediate).
 * Under a virtual clock time stands still while code runs: it never yields, as before.
 */
export class CpuSlice {
  private since: number;

  constructor(private readonly now: () => number, private readonly sliceMs = 4) {
    this.since = now();
  }

  /** Resolves at once inside the slice, after one event-loop turn past it. */
  async pass(): Promise<void> {
    if (this.now() - this.since < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = this.now();
  }
}
