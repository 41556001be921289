import type { Clock } from '../util/clock.ts';
import { ProtocolError, ShutdownError } from '../errors.ts';
import type { BlockTag } from './block-tag.ts';
import type { ByteTransport } from './byte-transport.ts';
import { CRC32_FRAME_CHECKSUM, FrameDecoder, encodeFrame, FRAME_HEADER_SIZE, type FrameChecksum } from './frame.ts';
import { Keepalive } from './keepalive.ts';
import { LinkEstimator, type SendSample } from './link-estimator.ts';
import { decodeMessage, encodeMessage, isSequenced, MsgType, type Message } from './messages.ts';
import { ReceiveSequence } from './receive-sequence.ts';
import { Priority, SendLanes, type PriorityValue } from './send-lanes.ts';
import { WireLedger } from './wire-ledger.ts';

export type { ByteTransport } from './byte-transport.ts';
export { Priority, type PriorityValue } from './send-lanes.ts';
export { INITIAL_WINDOW, WINDOW_GAIN, STARTUP_GAIN } from './link-estimator.ts';

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
  /**
   * Queued (not yet transmitted) bulk bytes above which waitBulkRoom() blocks (default 1 MiB).
   * Not scaled with the link's rate: a deeper queue decides REF-or-DATA for more blocks before the
   * target has acknowledged their duplicates' originals, and dirty-block dedup finds less.
   */
  bulkQueueLimit?: number;
  pingIntervalMs?: number;
  /**
   * Declare the link lost when nothing arrived for this long (default 15 s):
   * both sides ping every second, so silence means a dead path that TCP
   * itself would only notice after many minutes.
   */
  silenceTimeoutMs?: number;
}

export interface SendOptions {
  /** Called once the peer has processed it (never for a message taken back before sending). */
  onAck?: () => void;
  /** What a block message carries: purge() and promote() find it by this, and the ledger counts it. */
  tag?: BlockTag;
}

interface Outgoing {
  type: number;
  prio: PriorityValue;
  parts: Buffer[];
  bytes: number;
  /** Sequence number once transmitted (sequenced messages only). */
  seq: number;
  frame?: Buffer[];
  onAck?: () => void;
  tag?: BlockTag;
  /** The estimator's note at (the latest) transmission. */
  sample?: SendSample;
}

export interface ChannelStats {
  retransmittedBytes: number;
  window: number;
  inFlight: number;
  minRttMs: number | undefined;
  /** Smallest time from transmitting a message to its ack (the peer processed it) over the last 10 s. */
  minAckRttMs: number | undefined;
  deliveryRateBps: number | undefined;
  /** What the link carried when it was the limit (link-estimator.ts linkRateBps); for reports. */
  linkRateBps: number | undefined;
}

/**
 * The agents' message link: priority lanes, a congestion-sized send window
 * for bulk traffic (so an on-demand fetch never waits behind a deep queue in
 * the network), cumulative acks sent after the receiver has processed a
 * message (so an ack means "applied", which makes resume exact), and a
 * retransmit list of unacked messages for attach() after a reconnect.
 */
export class Channel {
  private transport: ByteTransport | undefined;
  private readonly checksum: FrameChecksum;
  private decoder: FrameDecoder;
  private readonly lanes: SendLanes<Outgoing>;
  /** Transmitted sequenced messages the peer has not acknowledged, in seq order (resent on attach). */
  private readonly unacked: Outgoing[] = [];
  private inFlightBytes = 0;
  private retransmittedBytes = 0;
  private nextSeq = 1;
  private writable = true;
  private closed = false;
  private readonly received: ReceiveSequence;
  private readonly estimator: LinkEstimator;
  private readonly keepalive: Keepalive;
  private idleWaiters: Array<() => void> = [];
  /** What crossed this channel's link. */
  readonly ledger = new WireLedger();

  constructor(private readonly opts: ChannelOptions) {
    this.checksum = opts.frameChecksum ?? CRC32_FRAME_CHECKSUM;
    this.decoder = new FrameDecoder(this.checksum);
    this.lanes = new SendLanes(opts.bulkQueueLimit);
    this.estimator = new LinkEstimator(opts);
    this.received = new ReceiveSequence(opts.clock, (seq) => this.sendRaw({ type: MsgType.ACK, seq }));
    this.keepalive = new Keepalive({
      clock: opts.clock,
      intervalMs: opts.pingIntervalMs,
      silenceTimeoutMs: opts.silenceTimeoutMs,
      ping: () => this.sendRaw({ type: MsgType.PING, t: opts.clock.now() }),
      dead: (err) => this.fail(err),
      linkUp: () => this.transport !== undefined && !this.closed,
    });
  }

  get stats(): ChannelStats {
    const e = this.estimator;
    return {
      retransmittedBytes: this.retransmittedBytes,
      window: e.window,
      inFlight: this.inFlightBytes,
      minRttMs: e.minRttMs,
      minAckRttMs: e.minAckRttMs,
      deliveryRateBps: e.deliveryRateBps,
      linkRateBps: e.linkRateBps,
    };
  }

  get connected(): boolean {
    return this.transport !== undefined;
  }

  /** Highest sequence number this side has fully processed (sent to the peer in HELLO/WELCOME on resume). */
  get processedSeq(): number {
    return this.received.processed;
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
    for (const o of resend) this.retransmittedBytes += o.bytes;
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
    this.keepalive.heard();
    for (const o of resend) this.transmit(o, true);
    // Bytes that arrived with the handshake reply belong to this channel.
    if (initialData?.length) this.receive(initialData);
    this.keepalive.start();
    this.pump();
  }

  /** Queues a message. Never blocks; bulk producers pace themselves with waitBulkRoom(). */
  send(m: Message, prio: PriorityValue = Priority.CONTROL, o: SendOptions = {}): void {
    if (this.closed) throw new ShutdownError('channel is closed');
    const parts = encodeMessage(m);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.lanes.push({ type: m.type, prio, parts, bytes, seq: 0, onAck: o.onAck, tag: o.tag });
    if (o.tag) this.ledger.queued(o.tag);
    this.pump();
  }

  /**
   * Whether nothing latency-sensitive (an on-demand fetch, the cut-over) waits behind bulk traffic
   * now: the send window then keeps more headroom over the bandwidth-delay product (link-estimator.ts,
   * THROUGHPUT_GAIN), so stalls of the peer do not idle the link. Off by default; turning it off
   * shrinks the window at once (bytes already sent drain within a round trip).
   */
  preferThroughput(on: boolean): void {
    this.estimator.preferThroughput(on);
    this.pump();
  }

  /** Resolves when the bulk/prefetch queue has room (back-pressure for background transfer loops). */
  waitBulkRoom(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.lanes.waitRoom();
  }

  /** Resolves when every sequenced message sent so far has been processed by the peer. */
  waitAllAcked(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Takes back queued, not yet transmitted messages of a priority whose tag
   * matches; returns their tags. The ledger counts them as purged, not sent.
   */
  purge(prio: PriorityValue, match: (tag: BlockTag) => boolean): BlockTag[] {
    const tags = this.lanes.take(prio, match).map((o) => o.tag!);
    for (const t of tags) this.ledger.takenBack(t);
    this.lanes.wakeProducers();
    return tags;
  }

  /**
   * Moves queued, not yet transmitted messages of less urgent priorities whose tag matches into
   * the `to` lane (behind what waits there), so they leave before the rest. Returns how many moved.
   */
  promote(to: PriorityValue, match: (tag: BlockTag) => boolean): number {
    const moved = this.lanes.promote(to, match);
    if (moved) {
      this.lanes.wakeProducers();
      this.pump();
    }
    return moved;
  }

  /** Bytes queued but not yet transmitted, per priority. */
  queuedBytes(prio: PriorityValue): number {
    return this.lanes.queuedBytes(prio);
  }

  /** Closes for good: pending sends are dropped, waiters released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.keepalive.stop();
    this.received.stop();
    const t = this.transport;
    this.transport = undefined;
    t?.close();
    this.lanes.wakeProducers(true);
    for (const f of this.idleWaiters.splice(0)) f();
  }

  /** Flushes a pending ack now (before a graceful close). */
  flushAck(): void {
    this.received.ackNow();
  }

  private isIdle(): boolean {
    return this.unacked.length === 0 && !this.lanes.some((o) => isSequenced(o.type));
  }

  private pump(): void {
    if (!this.transport) return;
    while (this.writable) {
      const o = this.lanes.next(this.inFlightBytes < this.estimator.window);
      if (!o) break;
      this.transmit(o, false);
    }
    this.lanes.wakeProducers();
  }

  private transmit(o: Outgoing, retransmit: boolean): void {
    const t = this.transport!;
    const sequenced = isSequenced(o.type);
    if (!o.frame || !retransmit) {
      if (sequenced) o.seq = this.nextSeq++;
      o.frame = encodeFrame(o.type, 0, o.seq, o.parts, this.checksum);
    }
    if (sequenced) {
      o.sample = this.estimator.sent(this.opts.clock.now(), this.unacked.length === 0);
      this.unacked.push(o);
      this.inFlightBytes += o.bytes;
    }
    this.ledger.frameSent(o.type, o.bytes + FRAME_HEADER_SIZE);
    if (!t.write(o.frame)) this.writable = false;
    if (sequenced) o.sample!.linkLimited = this.inFlightBytes >= this.estimator.window || !this.writable;
  }

  private receive(chunk: Buffer): void {
    this.ledger.bytesArrived(chunk.length);
    this.keepalive.heard();
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      return this.fail(e as Error);
    }
    for (const f of frames) {
      this.ledger.frameReceived(f.type, FRAME_HEADER_SIZE + f.payload.length);
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
        const now = this.opts.clock.now();
        this.estimator.pingRtt(now - m.t, now);
        this.pump();
        continue;
      }
      if (isSequenced(m.type)) {
        const order = this.received.arrived(f.seq);
        if (order === 'duplicate') continue; // a retransmission we already applied
        if (order === 'gap') return this.fail(new ProtocolError(`sequence gap: expected ${this.received.expected}, got ${f.seq}`));
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
    if (r && typeof (r).then === 'function') {
      (r).then(() => this.received.done(seq), (e) => this.fail(e as Error));
    } else this.received.done(seq);
  }

  /** Unsequenced control frames (acks, pings) go straight out, ahead of queues. */
  private sendRaw(m: Message): void {
    const t = this.transport;
    if (!t) return;
    const frame = encodeFrame(m.type, 0, 0, encodeMessage(m), this.checksum);
    this.ledger.frameSent(m.type, frame.reduce((s, b) => s + b.length, 0));
    if (!t.write(frame)) this.writable = false;
  }

  private ackUpTo(seq: number): void {
    let newest: Outgoing | undefined;
    let bytes = 0;
    while (this.unacked.length && this.unacked[0]!.seq <= seq) {
      const o = this.unacked.shift()!;
      this.inFlightBytes -= o.bytes;
      bytes += o.bytes;
      newest = o;
      o.onAck?.();
    }
    if (newest) this.estimator.acked(bytes, newest.sample!, this.opts.clock.now());
    if (this.isIdle()) for (const f of this.idleWaiters.splice(0)) f();
    this.pump();
  }

  private fail(err: Error): void {
    const t = this.transport;
    if (t) this.lost(t, err);
    t?.close();
  }

  private lost(t: ByteTransport, err?: Error): void {
    if (this.transport !== t) return;
    this.transport = undefined;
    this.keepalive.stop();
    // Unacked messages stay for attach(); queued ones stay queued.
    this.opts.onDisconnect?.(err);
  }
}
