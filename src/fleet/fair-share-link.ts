/**
 * The fleet's total WAN bandwidth cap, shared by weighted fair share. Each
 * migration's link to its target agent runs through a local TCP relay whose
 * source → target bytes are one flow of this link; the link sends at most
 * `capBps` in all, and between flows with data waiting it picks by weighted
 * fair queueing (the smallest virtual finish time: a flow of weight 2 gets
 * twice the bytes of one of weight 1 while both are busy; an idle flow's share
 * goes to the others). The target → source direction (acks, HAVE) is small and
 * is not shaped. Each flow queues at most `maxQueuedBytes`; beyond, its socket
 * is paused (back-pressure reaches the source's channel window).
 */
import net from 'node:net';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { Address } from '../util/address.ts';

const TICK_MS = 5;
/** Bytes a flow may queue before its socket is paused. */
const DEFAULT_MAX_QUEUED = 256 * 1024;
/** Budget carried over an idle spell at most (no burst after idling). */
const MAX_BURST_MS = 20;

interface Chunk {
  buf: Buffer;
  finish: number;
}

export class Flow {
  readonly queue: Chunk[] = [];
  queued = 0;
  lastFinish = 0;
  bytesSent = 0;
  /** Called with each chunk once the link lets it through. */
  onSend: (buf: Buffer) => void = () => {};
  /** Called when the queue fell below the limit again. */
  onDrain: () => void = () => {};
  paused = false;

  constructor(readonly name: string, public weight: number, readonly maxQueued: number) {}
}

export class FairShareLink {
  private readonly flows = new Set<Flow>();
  private vtime = 0;
  private budget = 0;
  private last: number;
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(private readonly o: { capBps: number; clock: Clock; maxQueuedBytes?: number }) {
    this.last = o.clock.now();
  }

  get capBps(): number {
    return this.o.capBps;
  }

  /** A new flow of this weight (> 0). */
  flow(name: string, weight: number): Flow {
    const f = new Flow(name, weight, this.o.maxQueuedBytes ?? DEFAULT_MAX_QUEUED);
    this.flows.add(f);
    return f;
  }

  remove(f: Flow): void {
    this.flows.delete(f);
  }

  /** Queues bytes on a flow; false when the flow is over its limit (pause the producer until onDrain). */
  enqueue(f: Flow, buf: Buffer): boolean {
    const start = Math.max(this.vtime, f.lastFinish);
    f.lastFinish = start + buf.length / f.weight;
    f.queue.push({ buf, finish: f.lastFinish });
    f.queued += buf.length;
    this.kick();
    return f.queued < f.maxQueued;
  }

  /** Bytes every flow sent, by name. */
  sent(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of this.flows) out[f.name] = (out[f.name] ?? 0) + f.bytesSent;
    return out;
  }

  private kick(): void {
    if (this.timer || this.closed) return;
    const now = this.o.clock.now();
    // Idle until now: no credit for the idle time beyond a small burst.
    this.budget = Math.min(this.budget, (this.o.capBps / 8) * (MAX_BURST_MS / 1000));
    this.last = Math.max(this.last, now - MAX_BURST_MS);
    this.timer = this.o.clock.setTimer(0, () => this.tick());
  }

  private tick(): void {
    this.timer = undefined;
    if (this.closed) return;
    const now = this.o.clock.now();
    this.budget += ((now - this.last) / 1000) * (this.o.capBps / 8);
    this.last = now;
    let busy = false;
    while (this.budget > 0) {
      let pick: Flow | undefined;
      for (const f of this.flows) if (f.queue.length && (!pick || f.queue[0]!.finish < pick.queue[0]!.finish)) pick = f;
      if (!pick) break;
      const c = pick.queue.shift()!;
      this.vtime = Math.max(this.vtime, c.finish - c.buf.length / pick.weight);
      pick.queued -= c.buf.length;
      pick.bytesSent += c.buf.length;
      this.budget -= c.buf.length;
      pick.onSend(c.buf);
      if (pick.paused && pick.queued < pick.maxQueued / 2) {
        pick.paused = false;
        pick.onDrain();
      }
    }
    for (const f of this.flows) if (f.queue.length) busy = true;
    if (busy) this.timer = this.o.clock.setTimer(TICK_MS, () => this.tick());
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }
}

/** One migration's way out: a loopback listener whose connections are relayed to `to`, source → target bytes through `flow`. */
export class ShapedRelay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly link: FairShareLink, private readonly flow: Flow, private readonly to: Address) {}

  async listen(): Promise<Address> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return { kind: 'tcp', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
  }

  private accept(client: net.Socket): void {
    const up = this.to.kind === 'unix' ? net.connect(this.to.path) : net.connect(this.to.port, this.to.host);
    this.sockets.add(client);
    this.sockets.add(up);
    const end = () => {
      // Bytes queued for a connection that is gone must not reach the next one.
      if (this.sockets.has(up)) {
        this.flow.queue.length = 0;
        this.flow.queued = 0;
      }
      client.destroy();
      up.destroy();
      this.sockets.delete(client);
      this.sockets.delete(up);
    };
    client.on('error', end);
    up.on('error', end);
    client.on('close', end);
    up.on('close', end);
    client.pause();
    up.once('connect', () => client.resume());
    // Only the current connection's bytes leave through the flow (a reconnect gets a fresh one).
    this.flow.onSend = (buf) => { if (!up.destroyed) up.write(buf); };
    this.flow.onDrain = () => client.resume();
    client.on('data', (buf: Buffer) => {
      if (!this.link.enqueue(this.flow, buf)) {
        this.flow.paused = true;
        client.pause();
      }
    });
    up.on('data', (buf: Buffer) => client.write(buf));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.link.remove(this.flow);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
