/** A byte pipe between the agents: a TCP/TLS socket, or the simulator's modelled link. */
export interface ByteTransport {
  /** Queues bytes; false means the transport is full: wait for onDrain. */
  write(parts: Buffer[]): boolean;
  onDrain(fn: () => void): void;
  onData(fn: (chunk: Buffer) => void): void;
  onClose(fn: (err?: Error) => void): void;
  /** Stop / restart delivering data (receive-side back-pressure). */
  pause(): void;
  resume(): void;
  close(): void;
}
