import type { ByteTransport } from './channel.ts';

/**
 * The receiving half every in-process ByteTransport shares (the test memory
 * link, the simulator's modelled link): callbacks, pause/resume with bytes
 * held while paused, and close notification of both ends. Subclasses model
 * how bytes travel and call deliver() on the peer when they arrive.
 */
export abstract class TransportEnd implements ByteTransport {
  private dataFn: (b: Buffer) => void = () => {};
  private drainFn: () => void = () => {};
  private readonly closeFns: Array<(err?: Error) => void> = [];
  private paused = false;
  private held: Buffer[] = [];
  closed = false;

  abstract write(parts: Buffer[]): boolean;
  abstract close(): void;

  /** Bytes arriving at this end. */
  deliver(b: Buffer): void {
    if (this.closed) return;
    if (this.paused) this.held.push(b);
    else this.dataFn(b);
  }

  onDrain(fn: () => void): void { this.drainFn = fn; }
  onData(fn: (chunk: Buffer) => void): void { this.dataFn = fn; }
  onClose(fn: (err?: Error) => void): void { this.closeFns.push(fn); }
  pause(): void { this.paused = true; }
  resume(): void {
    this.paused = false;
    for (const b of this.held.splice(0)) this.dataFn(b);
  }

  protected drained(): void {
    this.drainFn();
  }

  /** Marks both ends closed and tells both owners (once). */
  protected closeBoth(peer: TransportEnd, err?: Error): boolean {
    if (this.closed) return false;
    this.closed = true;
    peer.closed = true;
    for (const f of this.closeFns) f(err);
    for (const f of peer.closeFns) f(err);
    return true;
  }
}
