import type { Clock, TimerHandle } from '../util/clock.ts';
import { SampleReservoir } from '../util/sample-reservoir.ts';
import { ProtocolError, ShutdownError } from '../errors.ts';
import { CRC32_FRAME_CHECKSUM, FrameDecoder, encodeFrame, FRAME_HEADER_SIZE, type FrameChecksum } from './frame.ts';
import { decodeMessage, encodeMessage, isSequenced, MsgType, type Message } from './messages.ts';

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

/** Send priorities: lower goes first. On-demand fetches overtake everything but control. */
export const Priority = { CONTROL: 0, DEMAND: 1, PREFETCH: 2, BULK: 3 } as const;
export type PriorityValue = (typeof Priority)[keyof typeof Priority];

export interface ChannelOptions {
  clock: Clock;
  /** The runtime's frame checksum (default crc32 over every byte: real agents). */
  frameChecksum?: FrameChecksum;
  /** Called for each received message, in sequence order. The message is acked when the returned promise settles. */
  onMessage: (m: Message) => void | Promise<void>;
  /** The link failed or closed. The channel keeps unacked messages for a later attach(). */
  onDisconnect?: (err?: Error) => void;
  /** Bounds of the send window (unacked bulk/prefetch bytes on the link). */
  minWindow?: number;
  maxWindow?: number;
  initialWindow?: number;
  /** Queued (not yet transmitted) bulk bytes above which waitBulkRoom() blocks. */
  bulkQueueLimit?: number;
  pingIntervalMs?: number;
  /**
   * Declare the link lost when nothing arrived for this long (default 15 s):
   * both sides ping every second, so silence means a dead path that TCP
   * itself would only notice after many minutes.
   */
  silenceTimeoutMs?: number;
}

interface Outgoing {
  type: number;
  prio: PriorityValue;
  parts: Buffer[];
  bytes: number;
  /** Sequence number once transmitted (sequenced messages only). */
  seq: number;
  frame?: Buffer[];
  /** Called once the peer has processed it (never for a message purged before sending). */
  onAck?: () => void;
  /** Sent with the window or the transport full: its ack measures the link, not what the sender had to send. */
  linkLimited?: boolean;
  /** Delivery-rate bookkeeping at transmission: bytes acked so far, and when the last of them was. */
  deliveredAtSend: number;
  deliveredTimeAtSend: number;
  /** When it was transmitted, and when the newest message acked by then had been. */
  sentAt: number;
  firstSentAtSend: number;
}

export interface ChannelStats {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Bytes sent per message type name, framing included. */
  sentByType: Record<string, number>;
  receivedByType: Record<string, number>;
  retransmittedBytes: number;
  window: number;
  inFlight: number;
  minRttMs: number | undefined;
  /** Smallest time from transmitting a message to its ack (the peer processed it) over the last 10 s. */
  minAckRttMs: number | undefined;
  deliveryRateBps: number | undefined;
  /**
   * What the link carried when it was the limit: the median of the delivery-rate samples of
   * link-limited messages over the whole channel's life. For reports; the window uses the max
   * filter above, which reads high on purpose (BBR's probe) and by up to ~20 % on a 100 Mbit/s link.
   */
  linkRateBps: number | undefined;
}

/**
 * Window before the first rate sample. Small: a post-copy migration cuts over
 * at once, and every byte of a large first window (it was 4 MiB) sat in the
 * link's queue ahead of the first on-demand replies (390 ms at 100 Mbit/s,
 * the p99 miss latency session 3 saw). While the window limits the rate it
 * grows by STARTUP_GAIN per round trip, then by WINDOW_GAIN.
 */
export const INITIAL_WINDOW = 512 * 1024;

/** Send window over the measured bandwidth × (transmit-to-ack) product, once start-up is over. */
export const WINDOW_GAIN = 1.25;

/**
 * The same during start-up: doubling per round trip reaches 1 Gbit/s × 150 ms
 * from INITIAL_WINDOW in ~6 round trips (1.25 would take ~16, 2.4 s there).
 */
export const STARTUP_GAIN = 2;

const TYPE_NAMES = Object.fromEntries(Object.entries(MsgType).map(([k, v]) => [v, k])) as Record<number, string>;

/** Delivery-rate buckets, and how far back the rate estimate looks. */
const RATE_BUCKET_MS = 250;
const RATE_HORIZON_MS = 10_000;

/**
 * The agents' message link: priority queues, a congestion-sized send window
 * for bulk traffic (so an on-demand fetch never waits behind a deep queue in
 * the network), cumulative acks sent after the receiver has processed a
 * message (so an ack means "applied", which makes resume exact), and a
 * retransmit list of unacked messages for attach() after a reconnect.
 */
export class Channel {
  private transport: ByteTransport | undefined;
  private readonly checksum: FrameChecksum;
  private decoder: FrameDecoder;
  private readonly queues: Outgoing[][] = [[], [], [], []];
  private queuedBulkBytes = 0;
  private readonly unacked: Outgoing[] = [];
  private inFlightBytes = 0;
  private nextSeq = 1;
  private writable = true;
  private closed = false;

  // receive side
  private delivered = 0; // highest seq handed to onMessage
  private processed = 0; // highest seq whose handler (and all before it) finished
  private readonly pendingDone = new Set<number>();
  private ackTimer: TimerHandle | undefined;
  private lastAckSent = 0;

  // estimators
  private rateSamples: Array<{ at: number; bps: number; linkLimited: boolean }> = [];
  /** Link-limited rate samples of the whole life (bounded reservoir), for stats.linkRateBps. */
  private readonly linkLimitedRates = new SampleReservoir(4096);
  private linkRateCountAt = 0;
  /** Bytes of sequenced messages the peer has acknowledged, and when the latest ack came. */
  private deliveredBytes = 0;
  private deliveredTime = 0;
  private lastAckedSentAt = 0;
  /** Start-up (BBR's): the window grows by STARTUP_GAIN per round trip until the rate stops growing. */
  private pipeFilled = false;
  private fullRateBps = 0;
  private fullRateRounds = 0;
  private roundStartedAt = 0;
  private rttSamples: Array<{ at: number; ms: number }> = [];
  private ackRttSamples: Array<{ at: number; ms: number }> = [];
  private window: number;
  /** The delivery-rate estimate includes acks of messages sent while the link held the sender back. */
  private rateLinkLimited = false;
  private pingTimer: TimerHandle | undefined;
  private lastHeard = 0;

  private bulkWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  readonly stats: ChannelStats;

  constructor(private readonly opts: ChannelOptions) {
    this.checksum = opts.frameChecksum ?? CRC32_FRAME_CHECKSUM;
    this.decoder = new FrameDecoder(this.checksum);
    this.window = opts.initialWindow ?? INITIAL_WINDOW;
    this.stats = {
      bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0, sentByType: {}, receivedByType: {}, retransmittedBytes: 0,
      window: this.window, inFlight: 0, minRttMs: undefined, minAckRttMs: undefined, deliveryRateBps: undefined, linkRateBps: undefined,
    };
  }

  get connected(): boolean {
    return this.transport !== undefined;
  }

  /** Highest sequence number this side has fully processed (sent to the peer in HELLO/WELCOME on resume). */
  get processedSeq(): number {
    return this.processed;
  }

  /**
   * Starts using a transport. `peerProcessed` is the highest of our seqs the
   * peer has processed (from its HELLO/WELCOME); everything after it is sent again.
   */
  attach(transport: ByteTransport, peerProcessed = 0, initialData?: Buffer): void {
    if (this.closed) throw new ShutdownError('channel is closed');
    // A half-open old link (the peer already reconnected) is dropped; its close is then ignored.
    const old = this.transport;
    // Acks first, with no transport set, so nothing new goes out ahead of the retransmissions.
    this.transport = undefined;
    old?.close();
    this.ackUpTo(peerProcessed);
    this.transport = transport;
    this.decoder = new FrameDecoder(this.checksum);
    this.writable = true;
    // Go-back-N: requeue what the peer has not processed, ahead of anything new, in order.
    const resend = this.unacked.splice(0);
    this.inFlightBytes = 0;
    for (const o of resend) this.stats.retransmittedBytes += o.bytes;
    // Only the current link counts: a replaced one (half-closed, or stalled and late) may still
    // deliver bytes, and they must never reach the new link's decoder.
    transport.onData((chunk) => {
      if (this.transport === transport) this.receive(chunk);
    });
    transport.onDrain(() => {
      if (this.transport !== transport) return;
      this.writable = true;
      this.pump();
    });
    transport.onClose((err) => this.lost(transport, err));
    this.lastHeard = this.opts.clock.now();
    for (const o of resend) this.transmit(o, true);
    // Bytes that arrived with the handshake reply belong to this channel.
    if (initialData?.length) this.receive(initialData);
    this.pingTimer?.cancel();
    this.schedulePing();
    this.pump();
  }

  /** Queues a message. Never blocks; bulk producers pace themselves with waitBulkRoom(). */
  send(m: Message, prio: PriorityValue = Priority.CONTROL, onAck?: () => void): void {
    if (this.closed) throw new ShutdownError('channel is closed');
    const parts = encodeMessage(m);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    const o: Outgoing = { type: m.type, prio, parts, bytes, seq: 0, onAck, deliveredAtSend: 0, deliveredTimeAtSend: 0, sentAt: 0, firstSentAtSend: 0 };
    this.queues[prio]!.push(o);
    if (prio >= Priority.PREFETCH) this.queuedBulkBytes += bytes;
    this.pump();
  }

  /** Resolves when the bulk/prefetch queue has room (back-pressure for background transfer loops). */
  waitBulkRoom(): Promise<void> {
    if (this.queuedBulkBytes < (this.opts.bulkQueueLimit ?? 1024 * 1024) || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.bulkWaiters.push(resolve));
  }

  /** Resolves when every sequenced message sent so far has been processed by the peer. */
  waitAllAcked(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Removes queued, not yet transmitted messages of a priority that match; returns them. */
  purge(prio: PriorityValue, match: (m: { type: number; parts: Buffer[] }) => boolean): Array<{ type: number; parts: Buffer[] }> {
    const removed = this.takeQueued(prio, match);
    this.wakeBulk();
    return removed;
  }

  /** Takes the queued, not yet transmitted messages of one priority that match out of their queue. */
  private takeQueued(prio: PriorityValue, match: (m: { type: number; parts: Buffer[] }) => boolean): Outgoing[] {
    const q = this.queues[prio]!;
    if (!q.some(match)) return [];
    const kept: Outgoing[] = [];
    const removed: Outgoing[] = [];
    for (const o of q) (match(o) ? removed : kept).push(o);
    this.queues[prio] = kept;
    if (prio >= Priority.PREFETCH) for (const o of removed) this.queuedBulkBytes -= o.bytes;
    return removed;
  }

  /**
   * Moves queued, not yet transmitted messages of less urgent priorities that match into the
   * `to` queue (behind what waits there), so they leave before the rest. Returns how many moved.
   */
  promote(to: PriorityValue, match: (m: { type: number; parts: Buffer[] }) => boolean): number {
    let moved = 0;
    for (let p = to + 1; p < this.queues.length; p++) {
      for (const o of this.takeQueued(p as PriorityValue, match)) {
        if (to >= Priority.PREFETCH) this.queuedBulkBytes += o.bytes;
        o.prio = to;
        this.queues[to]!.push(o);
        moved++;
      }
    }
    if (moved) {
      this.wakeBulk();
      this.pump();
    }
    return moved;
  }

  /** Bytes queued but not yet transmitted, per priority. */
  queuedBytes(prio: PriorityValue): number {
    let n = 0;
    for (const o of this.queues[prio]!) n += o.bytes;
    return n;
  }

  /** Closes for good: pending sends are dropped, waiters released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pingTimer?.cancel();
    this.ackTimer?.cancel();
    const t = this.transport;
    this.transport = undefined;
    t?.close();
    this.wakeBulk(true);
    for (const f of this.idleWaiters.splice(0)) f();
  }

  /** Flushes a pending ack now (before a graceful close). */
  flushAck(): void {
    if (this.processed > this.lastAckSent) this.sendAck();
  }

  private isIdle(): boolean {
    return this.unacked.length === 0 && this.queues.every((q) => q.every((o) => !isSequenced(o.type)));
  }

  private pump(): void {
    const t = this.transport;
    if (!t) return;
    while (this.writable) {
      const o = this.nextToSend();
      if (!o) break;
      this.transmit(o, false);
    }
    this.wakeBulk();
  }

  private nextToSend(): Outgoing | undefined {
    for (let p = 0; p < this.queues.length; p++) {
      const q = this.queues[p]!;
      if (q.length === 0) continue;
      // Bulk and prefetch wait for window; control and demand never do (they are what must not wait).
      if (p >= Priority.PREFETCH && this.inFlightBytes >= this.window) return undefined;
      const o = q.shift()!;
      if (p >= Priority.PREFETCH) this.queuedBulkBytes -= o.bytes;
      return o;
    }
    return undefined;
  }

  private transmit(o: Outgoing, retransmit: boolean): void {
    const t = this.transport!;
    if (!o.frame || !retransmit) {
      if (isSequenced(o.type)) o.seq = this.nextSeq++;
      o.frame = encodeFrame(o.type, 0, o.seq, o.parts, this.checksum);
    }
    if (isSequenced(o.type)) {
      // Sent onto an idle link: the rate interval starts now, not at the last ack (idle time is not slowness).
      const now = this.opts.clock.now();
      if (this.unacked.length === 0) {
        this.deliveredTime = now;
        this.lastAckedSentAt = now;
      }
      o.sentAt = now;
      o.deliveredAtSend = this.deliveredBytes;
      o.deliveredTimeAtSend = this.deliveredTime;
      o.firstSentAtSend = this.lastAckedSentAt;
      this.unacked.push(o);
      this.inFlightBytes += o.bytes;
    }
    const n = o.bytes + FRAME_HEADER_SIZE;
    this.stats.bytesSent += n;
    this.stats.framesSent++;
    const name = TYPE_NAMES[o.type] ?? String(o.type);
    this.stats.sentByType[name] = (this.stats.sentByType[name] ?? 0) + n;
    this.stats.inFlight = this.inFlightBytes;
    if (!t.write(o.frame)) this.writable = false;
    if (isSequenced(o.type)) o.linkLimited = this.inFlightBytes >= this.window || !this.writable;
  }

  private receive(chunk: Buffer): void {
    this.stats.bytesReceived += chunk.length;
    this.lastHeard = this.opts.clock.now();
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      return this.fail(e as Error);
    }
    for (const f of frames) {
      this.stats.framesReceived++;
      const tn = TYPE_NAMES[f.type] ?? String(f.type);
      this.stats.receivedByType[tn] = (this.stats.receivedByType[tn] ?? 0) + FRAME_HEADER_SIZE + f.payload.length;
      let m: Message;
      try {
        m = decodeMessage(f.type, f.payload);
      } catch (e) {
        return this.fail(e as Error);
      }
      if (m.type === MsgType.ACK) {
        this.ackUpTo(m.seq);
        continue;
      }
      if (m.type === MsgType.PING) {
        this.sendRaw({ type: MsgType.PONG, t: m.t });
        continue;
      }
      if (m.type === MsgType.PONG) {
        this.addRtt(this.opts.clock.now() - m.t);
        continue;
      }
      if (isSequenced(m.type)) {
        if (f.seq <= this.delivered) continue; // a retransmission we already applied
        if (f.seq !== this.delivered + 1) return this.fail(new ProtocolError(`sequence gap: expected ${this.delivered + 1}, got ${f.seq}`));
        this.delivered = f.seq;
      }
      this.dispatch(m, f.seq);
    }
  }

  private dispatch(m: Message, seq: number): void {
    let r: void | Promise<void>;
    try {
      r = this.opts.onMessage(m);
    } catch (e) {
      return this.fail(e as Error);
    }
    if (!isSequenced(m.type)) return;
    if (r && typeof (r as Promise<void>).then === 'function') {
      (r as Promise<void>).then(() => this.done(seq), (e) => this.fail(e as Error));
    } else this.done(seq);
  }

  private done(seq: number): void {
    this.pendingDone.add(seq);
    while (this.pendingDone.has(this.processed + 1)) {
      this.pendingDone.delete(this.processed + 1);
      this.processed++;
    }
    // Coalesce acks: one per millisecond, or at once when a lot is unacknowledged.
    if (this.processed - this.lastAckSent >= 64) this.sendAck();
    else if (!this.ackTimer) this.ackTimer = this.opts.clock.setTimer(1, () => { this.ackTimer = undefined; this.sendAck(); });
  }

  private sendAck(): void {
    this.ackTimer?.cancel();
    this.ackTimer = undefined;
    if (this.processed === this.lastAckSent) return;
    this.lastAckSent = this.processed;
    this.sendRaw({ type: MsgType.ACK, seq: this.processed });
  }

  /** Unsequenced control frames (acks, pings) go straight out, ahead of queues. */
  private sendRaw(m: Message): void {
    const t = this.transport;
    if (!t) return;
    const frame = encodeFrame(m.type, 0, 0, encodeMessage(m), this.checksum);
    const n = frame.reduce((s, b) => s + b.length, 0);
    this.stats.bytesSent += n;
    this.stats.framesSent++;
    const name = TYPE_NAMES[m.type]!;
    this.stats.sentByType[name] = (this.stats.sentByType[name] ?? 0) + n;
    if (!t.write(frame)) this.writable = false;
  }

  private ackUpTo(seq: number): void {
    const now = this.opts.clock.now();
    let last: Outgoing | undefined;
    while (this.unacked.length && this.unacked[0]!.seq <= seq) {
      const o = this.unacked.shift()!;
      this.inFlightBytes -= o.bytes;
      this.deliveredBytes += o.bytes;
      last = o;
      o.onAck?.();
    }
    if (last) {
      this.deliveredTime = now;
      this.lastAckedSentAt = last.sentAt;
      this.addAckRtt(now - last.sentAt, now);
      // Acks bunched by a stall at the peer come faster than the link delivered: the send interval bounds that.
      this.addRate(this.deliveredBytes - last.deliveredAtSend, Math.max(now - last.deliveredTimeAtSend, last.sentAt - last.firstSentAtSend), now, last.linkLimited === true);
    }
    this.stats.inFlight = this.inFlightBytes;
    if (this.isIdle()) for (const f of this.idleWaiters.splice(0)) f();
    this.pump();
  }

  /**
   * Delivery rate, sampled per ack as BBR does: the bytes acked between the
   * newest acked message's transmission and now, over the time since the ack
   * that preceded its transmission. The interval spans about a round trip, so
   * acks that arrive bunched (coalesced, or released after a stall at the
   * peer) do not read as a faster link, which a count per short time bucket
   * did (it overstated a 100 Mbit/s link by up to 30 %, and the window with it:
   * a queue that on-demand replies waited behind). Max of the samples over
   * 10 s, kept per 250 ms bucket; samples from an interval under 1 ms are noise.
   */
  private addRate(bytes: number, intervalMs: number, now: number, linkLimited: boolean): void {
    if (!(intervalMs >= 1)) return;
    const slot = Math.floor(now / RATE_BUCKET_MS);
    const bps = (bytes * 8 * 1000) / intervalMs;
    if (linkLimited) {
      this.linkLimitedRates.record(bps);
      // The median costs a sort of the reservoir: refresh it every 64 samples, not on every ack.
      if (this.linkLimitedRates.count - this.linkRateCountAt >= 64 || this.stats.linkRateBps === undefined) {
        this.linkRateCountAt = this.linkLimitedRates.count;
        this.stats.linkRateBps = this.linkLimitedRates.percentile(50);
      }
    }
    const last = this.rateSamples.at(-1);
    if (last && last.at === slot) {
      last.bps = Math.max(last.bps, bps);
      last.linkLimited ||= linkLimited;
    } else {
      this.rateSamples.push({ at: slot, bps, linkLimited });
      while (this.rateSamples.length && slot - this.rateSamples[0]!.at > RATE_HORIZON_MS / RATE_BUCKET_MS) this.rateSamples.shift();
    }
    let max = 0;
    let limited = false;
    for (const s of this.rateSamples) {
      max = Math.max(max, s.bps);
      limited ||= s.linkLimited;
    }
    this.stats.deliveryRateBps = max;
    this.rateLinkLimited = limited;
    if (linkLimited) this.checkPipeFilled(max, now);
    this.resize();
  }

  /**
   * Start-up ends once three round trips in a row, each with the link holding
   * the sender back, raised the rate by less than a quarter (BBR's full-pipe
   * test); from then on the window keeps only WINDOW_GAIN of headroom.
   */
  private checkPipeFilled(rateBps: number, now: number): void {
    if (this.pipeFilled) return;
    if (rateBps >= 1.25 * this.fullRateBps) {
      this.fullRateBps = rateBps;
      this.fullRateRounds = 0;
      this.roundStartedAt = now;
      return;
    }
    const round = this.stats.minAckRttMs ?? this.stats.minRttMs ?? 0;
    if (now - this.roundStartedAt < round) return;
    this.roundStartedAt = now;
    if (++this.fullRateRounds >= 3) this.pipeFilled = true;
  }

  private addRtt(ms: number): void {
    const now = this.opts.clock.now();
    this.rttSamples.push({ at: now, ms: Math.max(0, ms) });
    while (this.rttSamples.length && (now - this.rttSamples[0]!.at > 30_000 || this.rttSamples.length > 1024)) this.rttSamples.shift();
    let min = Infinity;
    for (const s of this.rttSamples) min = Math.min(min, s.ms);
    this.stats.minRttMs = min;
    this.resize();
  }

  /** Smallest transmit-to-ack time over the last 10 s, kept per 250 ms bucket. */
  private addAckRtt(ms: number, now: number): void {
    const slot = Math.floor(now / 250);
    const last = this.ackRttSamples.at(-1);
    if (last && last.at === slot) last.ms = Math.min(last.ms, ms);
    else {
      this.ackRttSamples.push({ at: slot, ms });
      while (this.ackRttSamples.length && slot - this.ackRttSamples[0]!.at > 40) this.ackRttSamples.shift();
    }
    let min = Infinity;
    for (const s of this.ackRttSamples) min = Math.min(min, s.ms);
    this.stats.minAckRttMs = min;
  }

  /**
   * Window = 1.25 × the rate times the smallest transmit-to-ack time: what
   * keeps the link busy, since an ack comes after the peer has processed the
   * message (its write, one serialisation, the ack coalescing), and little
   * more, since every byte beyond it waits in the link's queue, in front of
   * any on-demand reply sent after it. (The ping's round trip leaves the
   * processing out; 1.5 × that had replies waiting ~20 ms at 100 Mbit/s.)
   */
  private resize(): void {
    const rate = this.stats.deliveryRateBps;
    const rtt = this.stats.minAckRttMs ?? this.stats.minRttMs;
    if (rate === undefined || rtt === undefined) return;
    const bdp = (rate / 8) * (Math.max(rtt, 1) / 1000);
    const min = this.opts.minWindow ?? 256 * 1024;
    const max = this.opts.maxWindow ?? 256 * 1024 * 1024;
    // While window-limited the rate sample equals window/RTT, so growing by the gain per round probes for more.
    let next = Math.min(max, Math.max(min, (this.pipeFilled ? WINDOW_GAIN : STARTUP_GAIN) * bdp));
    // Rate samples from a sender that neither filled the window nor the transport measure what
    // it offered, not the link (e.g. only OFFERs in flight while their answers are awaited):
    // they may grow the window, never shrink it (as BBR treats application-limited samples).
    if (!this.rateLinkLimited) next = Math.max(next, this.window);
    this.window = next;
    this.stats.window = this.window;
    this.pump();
  }

  private schedulePing(): void {
    const every = this.opts.pingIntervalMs ?? 1000;
    this.sendRaw({ type: MsgType.PING, t: this.opts.clock.now() });
    this.pingTimer = this.opts.clock.setTimer(every, () => {
      if (!this.transport || this.closed) return;
      const silent = this.opts.clock.now() - this.lastHeard;
      const limit = this.opts.silenceTimeoutMs ?? 15_000;
      if (silent > limit) return this.fail(new ProtocolError(`nothing heard from the peer for ${Math.round(silent)} ms (limit ${limit} ms): link presumed dead`));
      this.schedulePing();
    });
  }

  private wakeBulk(all = false): void {
    if (!all && this.queuedBulkBytes >= (this.opts.bulkQueueLimit ?? 1024 * 1024)) return;
    for (const f of this.bulkWaiters.splice(0)) f();
  }

  private fail(err: Error): void {
    const t = this.transport;
    if (t) this.lost(t, err);
    t?.close();
  }

  private lost(t: ByteTransport, err?: Error): void {
    if (this.transport !== t) return;
    this.transport = undefined;
    this.pingTimer?.cancel();
    // Unacked messages stay for attach(); queued ones stay queued.
    this.opts.onDisconnect?.(err);
  }
}
