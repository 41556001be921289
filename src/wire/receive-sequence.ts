import type { Clock, TimerHandle } from '../util/clock.ts';

/**
 * The receive side of the channel's exactly-once delivery: which sequenced
 * messages were handed on, which are fully processed (a message's handler may
 * finish after a later one's), and the cumulative acks that say so. An ack
 * means "processed", which is what makes a resume exact.
 */
export class ReceiveSequence {
  /** Highest seq handed on. */
  private delivered = 0;
  /** Highest seq whose handler (and all before it) finished. */
  private processedSeq = 0;
  private readonly pendingDone = new Set<number>();
  private ackTimer: TimerHandle | undefined;
  private lastAckSent = 0;

  constructor(private readonly clock: Clock, private readonly sendAck: (seq: number) => void) {}

  get processed(): number {
    return this.processedSeq;
  }

  /** Whether a sequenced message arriving with `seq` is the next one, one already handed on (a retransmission), or beyond a gap. */
  arrived(seq: number): 'next' | 'duplicate' | 'gap' {
    if (seq <= this.delivered) return 'duplicate';
    if (seq !== this.delivered + 1) return 'gap';
    this.delivered = seq;
    return 'next';
  }

  /** The next seq expected (for an error message). */
  get expected(): number {
    return this.delivered + 1;
  }

  /** The handler of `seq` finished. */
  done(seq: number): void {
    this.pendingDone.add(seq);
    while (this.pendingDone.has(this.processedSeq + 1)) {
      this.pendingDone.delete(this.processedSeq + 1);
      this.processedSeq++;
    }
    // Coalesce acks: one per millisecond, or at once when a lot is unacknowledged.
    if (this.processedSeq - this.lastAckSent >= 64) this.ackNow();
    else if (!this.ackTimer) this.ackTimer = this.clock.setTimer(1, () => { this.ackTimer = undefined; this.ackNow(); });
  }

  /** Sends the pending ack now, if there is one. */
  ackNow(): void {
    this.ackTimer?.cancel();
    this.ackTimer = undefined;
    if (this.processedSeq === this.lastAckSent) return;
    this.lastAckSent = this.processedSeq;
    this.sendAck(this.processedSeq);
  }

  stop(): void {
    this.ackTimer?.cancel();
  }
}
