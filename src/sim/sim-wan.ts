/**
 * One migration's WAN link in the fleet simulation: the simulator's modelled
 * link (sim-link.ts: one-way delay, frames joined under the content model)
 * whose source → target bytes first pass through a flow of the fleet's
 * FairShareLink (src/fleet/fair-share-link.ts, the very code `fleet run`
 * shapes with, here on the virtual clock): the cap is shared by weighted fair
 * queueing and a flow over its queue limit refuses writes until it drains,
 * so back-pressure reaches the source's channel as from a socket. The
 * target → source direction (acks, HAVE) is not shaped, as in `fleet run`.
 */
import type { ByteTransport } from '../wire/channel.ts';
import { memoryLinkPair, type MemoryLinkEnd } from '../wire/memory-link.ts';
import { FairShareLink, type Flow } from '../fleet/fair-share-link.ts';
import type { Clock } from '../util/clock.ts';
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from '../wire/frame.ts';
import { frameJoiner } from './sim-link.ts';

/** The source's end: writes queue on the flow, and leave on the link when the fair share lets them. */
class ShapedEnd implements ByteTransport {
  /** Writes waiting on the flow, in order; the flow carries only their lengths. */
  private readonly waiting: Buffer[][] = [];
  private drainFn: () => void = () => {};

  constructor(private readonly end: MemoryLinkEnd, private readonly link: FairShareLink, private readonly flow: Flow, private readonly lengths: Buffer) {
    flow.onSend = () => {
      const parts = this.waiting.shift();
      if (parts && !end.closed) end.write(parts);
    };
    flow.onDrain = () => this.drainFn();
  }

  write(parts: Buffer[]): boolean {
    if (this.end.closed) return false;
    let n = 0;
    for (const p of parts) n += p.length;
    this.waiting.push(parts);
    // A view of the right length stands for the write in the flow's queue (no copy).
    const ok = this.link.enqueue(this.flow, this.lengths.subarray(0, Math.min(n, this.lengths.length)));
    if (!ok) this.flow.paused = true;
    return ok;
  }

  onDrain(fn: () => void): void { this.drainFn = fn; }
  onData(fn: (chunk: Buffer) => void): void { this.end.onData(fn); }
  onClose(fn: (err?: Error) => void): void { this.end.onClose(fn); }
  pause(): void { this.end.pause(); }
  resume(): void { this.end.resume(); }

  close(): void {
    this.link.remove(this.flow);
    this.flow.queue.length = 0;
    this.flow.queued = 0;
    this.waiting.length = 0;
    this.end.close();
  }
}

/** The fleet's WAN: one FairShareLink; each migration connects through a flow of its own. */
export class SharedWan {
  readonly link: FairShareLink;
  /** Never written: its views stand for writes' lengths in the flows' queues. */
  private readonly lengths = Buffer.alloc(FRAME_HEADER_SIZE + MAX_FRAME_PAYLOAD + 64);

  constructor(private readonly clock: Clock, capBps: number, private readonly rttMs: number) {
    this.link = new FairShareLink({ capBps, clock });
  }

  /** A source end shaped by a flow of this weight, and the target's end, the WAN's round trip apart. */
  connect(name: string, weight: number): { source: ByteTransport; target: ByteTransport; flow: Flow } {
    // Unlimited past the fair share: the cap is the bottleneck; the link adds the delay.
    const [a, b] = memoryLinkPair(this.clock, { bandwidthBps: Infinity, delayMs: this.rttMs / 2 }, { noCopy: true, joiner: frameJoiner });
    const flow = this.link.flow(name, weight);
    return { source: new ShapedEnd(a, this.link, flow, this.lengths), target: b, flow };
  }

  close(): void {
    this.link.close();
  }
}
