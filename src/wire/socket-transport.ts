import type { Socket } from 'node:net';
import type { ByteTransport } from './channel.ts';

/** A ByteTransport over a connected TCP or TLS socket. */
export class SocketTransport implements ByteTransport {
  constructor(readonly socket: Socket) {
    socket.setNoDelay?.(true);
    socket.on('error', () => {}); // surfaced through onClose
  }

  write(parts: Buffer[]): boolean {
    if (this.socket.destroyed) return false;
    let ok = true;
    if (parts.length > 1) this.socket.cork();
    for (const p of parts) ok = this.socket.write(p);
    if (parts.length > 1) this.socket.uncork();
    return ok;
  }

  onDrain(fn: () => void): void {
    this.socket.on('drain', fn);
  }

  onData(fn: (chunk: Buffer) => void): void {
    this.socket.on('data', fn);
    // The handshake reader leaves the socket explicitly paused; a listener alone would not restart it.
    this.socket.resume();
  }

  onClose(fn: (err?: Error) => void): void {
    let err: Error | undefined;
    this.socket.on('error', (e) => (err = e));
    this.socket.on('close', () => fn(err));
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.end();
    // A peer that never reads must not hold the socket open forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
}
