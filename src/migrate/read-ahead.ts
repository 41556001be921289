/**
 * The blocks an engine loop has read and started preparing (content id, zstd
 * on the runtime's block work) but not yet sent: up to `depth` of them, sent
 * in the order they were read. With worker threads this keeps the workers busy
 * while the loop reads the next blocks; with the work on this thread (depth 0)
 * each block is sent as soon as it is read, as before.
 */
export class ReadAhead<T> {
  private readonly queue: T[] = [];

  constructor(
    private readonly depth: number,
    private readonly finish: (item: T) => Promise<void>,
  ) {}

  /** Queues an item; sends the oldest once more than `depth` wait. */
  async add(item: T): Promise<void> {
    this.queue.push(item);
    if (this.queue.length > this.depth) await this.finish(this.queue.shift()!);
  }

  /** Sends everything queued, oldest first. */
  async drain(): Promise<void> {
    while (this.queue.length) await this.finish(this.queue.shift()!);
  }

  /** Items queued but not sent (after a stop or a failure): the caller puts them back where they came from. */
  takeUnsent(): T[] {
    return this.queue.splice(0);
  }
}

/** How many blocks to read ahead for a block work of `threads` workers: enough to keep each busy between replies. */
export function readAheadDepth(threads: number): number {
  return threads > 0 ? 4 * threads : 0;
}
