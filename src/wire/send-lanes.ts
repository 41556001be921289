import type { BlockTag } from './block-tag.ts';

/** Send priorities: lower goes first. On-demand fetches overtake everything but control. */
export const Priority = { CONTROL: 0, DEMAND: 1, PREFETCH: 2, BULK: 3 } as const;
export type PriorityValue = (typeof Priority)[keyof typeof Priority];

/** What the lanes need to know of a queued message. */
export interface Queued {
  prio: PriorityValue;
  bytes: number;
  tag?: BlockTag;
}

const isBulk = (p: number) => p >= Priority.PREFETCH;

/**
 * The channel's send queues, one per priority, not yet transmitted. Bulk and
 * prefetch bytes are bounded: producers wait for room (back-pressure for the
 * background transfer loops), and only those lanes wait for the send window.
 */
export class SendLanes<T extends Queued> {
  private readonly queues: T[][] = [[], [], [], []];
  private queuedBulkBytes = 0;
  private roomWaiters: Array<() => void> = [];

  constructor(private readonly bulkQueueLimit = 1024 * 1024) {}


  push(o: T): void {
    this.queues[o.prio]!.push(o);
    if (isBulk(o.prio)) this.queuedBulkBytes += o.bytes;
  }

  /** The next message to transmit, most urgent first; bulk and prefetch only while `windowOpen`. */
  next(windowOpen: boolean): T | undefined {
    for (let p = 0; p < this.queues.length; p++) {
      const q = this.queues[p]!;
      if (q.length === 0) continue;
      // Control and demand never wait for the window (they are what must not wait).
      if (isBulk(p) && !windowOpen) return undefined;
      const o = q.shift()!;
      if (isBulk(p)) this.queuedBulkBytes -= o.bytes;
      return o;
    }
    return undefined;
  }

  /** Takes the queued messages of one priority whose tag matches out of their lane. */
  take(prio: PriorityValue, match: (tag: BlockTag) => boolean): T[] {
    const q = this.queues[prio]!;
    const matches = (o: T) => o.tag !== undefined && match(o.tag);
    if (!q.some(matches)) return [];
    const kept: T[] = [];
    const removed: T[] = [];
    for (const o of q) (matches(o) ? removed : kept).push(o);
    this.queues[prio] = kept;
    if (isBulk(prio)) for (const o of removed) this.queuedBulkBytes -= o.bytes;
    return removed;
  }

  /**
   * Moves queued messages of less urgent priorities whose tag matches into the
   * `to` lane (behind what waits there), so they leave before the rest. Returns how many moved.
   */
  promote(to: PriorityValue, match: (tag: BlockTag) => boolean): number {
    let moved = 0;
    for (let p = to + 1; p < this.queues.length; p++) {
      for (const o of this.take(p as PriorityValue, match)) {
        if (isBulk(to)) this.queuedBulkBytes += o.bytes;
        o.prio = to;
        this.queues[to]!.push(o);
        moved++;
      }
    }
    return moved;
  }

  /** Bytes queued in one lane. */
  queuedBytes(prio: PriorityValue): number {
    let n = 0;
    for (const o of this.queues[prio]!) n += o.bytes;
    return n;
  }

  some(pred: (o: T) => boolean): boolean {
    return this.queues.some((q) => q.some(pred));
  }

  /** Resolves when the bulk and prefetch lanes have room. */
  waitRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Releases the producers waiting for room: when there is room, or all of them (`all`, at close). */
  wakeProducers(all = false): void {
    if (!all && !this.hasRoom()) return;
    for (const f of this.roomWaiters.splice(0)) f();
  }

  private hasRoom(): boolean {
    return this.queuedBulkBytes < this.bulkQueueLimit;
  }
}
