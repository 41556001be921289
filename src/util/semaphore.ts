/** Bounds how many tasks run at once; waiters are served in arrival order. */
export class Semaphore {
  private readonly queue: Array<() => void> = [];
  private free: number;

  constructor(readonly permits: number) {
    this.free = permits;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.free++;
    }
  }
}
