import type { Duplex } from 'node:stream';
import { ProtocolError } from '../errors.ts';

/**
 * Exact-length reads from a byte stream, with back-pressure: when more than
 * `highWater` bytes sit unread (beyond what a pending read asked for), the
 * stream is paused until the consumer catches up. A read that fits inside one
 * received chunk returns a view of it (no copy); only reads that straddle
 * chunks are concatenated.
 */
export class ByteReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private head = 0; // consumed bytes of chunks[0]
  private want = 0;
  // deliver takes the bytes as soon as they are buffered, in push(), so they never count against highWater.
  private waiter: { n: number; deliver: () => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  private paused = false;

  constructor(
    private readonly stream: Duplex,
    private readonly highWater = 4 * 1024 * 1024,
  ) {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('end', () => this.finish(new ProtocolError('connection closed by peer')));
    stream.on('close', () => this.finish(new ProtocolError('connection closed')));
    stream.on('error', (e: Error) => this.finish(new ProtocolError(`connection error: ${e.message}`, { cause: e })));
  }

  get available(): number {
    return this.buffered;
  }

  /** True once the stream has ended and no more bytes will arrive. */
  get isEnded(): boolean {
    return this.ended !== undefined;
  }

  /** Returns n bytes now if they are buffered, else undefined (synchronous fast path). */
  tryRead(n: number): Buffer | undefined {
    if (this.buffered < n || this.waiter) return undefined;
    return this.take(n);
  }

  /** Resolves with exactly n bytes; rejects if the stream ends first. One pending read at a time. */
  read(n: number): Promise<Buffer> {
    return this.whenBuffered(n, () => this.take(n));
  }

  /**
   * Returns n bytes now if they are buffered, as views of the received chunks
   * in order (no copy), else undefined. Past `maxChunks` views the bytes are
   * joined into one buffer instead, so a peer sending tiny segments cannot
   * make the list unbounded.
   */
  tryReadChunks(n: number, maxChunks: number): Buffer[] | undefined {
    if (this.buffered < n || this.waiter) return undefined;
    return this.takeChunks(n, maxChunks);
  }

  /** As tryReadChunks, waiting for the bytes; rejects if the stream ends first. */
  readChunks(n: number, maxChunks: number): Promise<Buffer[]> {
    return this.whenBuffered(n, () => this.takeChunks(n, maxChunks));
  }

  /** Resolves with take() once n bytes are buffered (letting the stream run until then). */
  private whenBuffered<T>(n: number, take: () => T): Promise<T> {
    if (this.waiter) return Promise.reject(new Error('ByteReader: concurrent read'));
    if (this.buffered >= n) return Promise.resolve(take());
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { n, deliver: () => resolve(take()), reject };
      this.want = n;
      this.maybeResume();
    });
  }

  /** Discards n bytes (e.g. the payload of a rejected write) without holding them all in memory. */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const step = Math.min(left, 1024 * 1024);
      await this.read(step);
      left -= step;
    }
  }

  private push(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = undefined;
      this.want = 0;
      w.deliver();
    }
    if (!this.paused && this.buffered > Math.max(this.highWater, this.want)) {
      this.paused = true;
      this.stream.pause();
    }
  }

  private take(n: number): Buffer {
    // Zero bytes (a zero-length write's payload) may be asked for when nothing is buffered.
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    const firstLeft = first.length - this.head;
    let out: Buffer;
    if (n <= firstLeft) {
      out = first.subarray(this.head, this.head + n);
      this.advance(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const avail = c.length - this.head;
        const k = Math.min(avail, n - off);
        c.copy(out, off, this.head, this.head + k);
        off += k;
        this.advance(k);
      }
    }
    this.maybeResume();
    return out;
  }

  private takeChunks(n: number, maxChunks: number): Buffer[] {
    if (n === 0) return [];
    // How many received chunks the n bytes span; more than maxChunks means one joined copy.
    let spans = 0;
    for (let i = 0, left = n + this.head; left > 0 && spans <= maxChunks; i++, spans++) left -= this.chunks[i]!.length;
    if (spans > maxChunks) return [this.take(n)];
    const out = new Array<Buffer>(spans);
    this.buffered -= n;
    let left = n;
    for (let i = 0; i < spans; i++) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, left);
      out[i] = c.subarray(this.head, this.head + k);
      left -= k;
      this.advance(k);
    }
    this.maybeResume();
    return out;
  }

  /** Moves past k bytes of the first chunk (k at most what is left of it), dropping it when used up. */
  private advance(k: number): void {
    this.head += k;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  private maybeResume(): void {
    if (this.paused && this.buffered <= Math.max(this.highWater, this.want)) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private finish(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.reject(err);
    }
  }
}
