import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * An in-process stand-in for a connected socket: the fuzzer's bytes are what
 * the peer "sent", whatever the code under test writes is counted and dropped.
 * Lets a server or reader take a million connections without a kernel socket each.
 */
export class FuzzSocket extends Duplex {
  written = 0;
  readonly remoteAddress = undefined;

  constructor() {
    // As a net.Socket: the peer's EOF ends our side too, so 'close' follows.
    super({ allowHalfOpen: false });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.written += chunk.length;
    cb();
  }

  setNoDelay(): this {
    return this;
  }

  /** Delivers the chunks (one per tick, as a network would) and then EOF. */
  feed(chunks: Buffer[]): void {
    let i = 0;
    const next = () => {
      if (this.destroyed) return;
      if (i < chunks.length) {
        this.push(chunks[i++]);
        setImmediate(next);
      } else {
        this.push(null);
      }
    };
    next();
  }

  asSocket(): Socket {
    return this as unknown as Socket;
  }
}
