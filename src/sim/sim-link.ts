/**
 * The simulator's modelled link: a pair of ByteTransports on a clock. Each
 * direction is a FIFO bottleneck — a write (one frame) leaves when the
 * previous one has, after its serialisation time at the bandwidth, and
 * arrives one-way delay later; the sender's buffer is bounded (write()
 * returns false above it, onDrain when it has half emptied), as a socket's
 * is. No loss, no reordering.
 *
 * Same model as wire/memory-transport.ts, built for millions of frames: one
 * entry per write rather than per buffer, O(1) per event (leave and arrive
 * times are both monotonic along the FIFO), and no copy of what is written
 * (the channel never reuses a frame's buffers; the receiver gets one
 * buffer per frame, into which only what the frame carries under the content
 * model is copied).
 */
import type { ByteTransport } from '../wire/channel.ts';
import { TransportEnd } from '../wire/transport-end.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { carriedBytes, CHECKED_PAYLOAD_BYTES } from './content-model.ts';
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from '../wire/frame.ts';
import { OverlapArena } from './overlap-arena.ts';

/** A frame's leading bytes are always copied whole: the header and what the modelled checksum covers. */
const LEAD = FRAME_HEADER_SIZE + CHECKED_PAYLOAD_BYTES;

/**
 * One buffer for a frame's parts, as a socket would deliver it, copying what
 * the frame carries under the content model: a modelled block's token, not
 * its filler (content-model.ts carriedBytes), and always the leading bytes the
 * modelled frame checksum covers. The length is the real one.
 */
function joinFrame(arena: OverlapArena, parts: Buffer[], n: number): Buffer {
  // The carried bytes end where the last part with real content ends.
  let carried = 0;
  let off = 0;
  const keep: number[] = [];
  for (const p of parts) {
    const k = Math.min(p.length, Math.max(carriedBytes(p), LEAD - off));
    keep.push(k);
    if (k > 0) carried = off + k;
    off += p.length;
  }
  const out = arena.take(n, carried);
  off = 0;
  parts.forEach((p, i) => {
    p.copy(out, off, 0, keep[i]);
    off += p.length;
  });
  return out;
}

export interface SimLinkModel {
  bandwidthBps: number;
  /** One-way delay (RTT / 2). */
  delayMs: number;
  /** Bytes a sender may have queued before write() returns false (default 256 KiB, as memory-transport). */
  sendBuffer?: number;
}

interface Entry {
  leaveAt: number;
  arriveAt: number;
  parts: Buffer[];
  n: number;
}

class Direction extends TransportEnd {
  peer!: Direction;
  private readonly fifo: Entry[] = [];
  /** fifo[head] is the first not yet arrived; fifo[leftUpTo] the first not yet left (as of the last settle). */
  private head = 0;
  private leftUpTo = 0;
  private busyUntil = 0;
  private queued = 0;
  /** The last write was refused: the sender waits for a drain. */
  private blocked = false;
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private readonly limit: number;
  /** Received frames: a modelled block's filler is shared (overlap-arena.ts). */
  private readonly arena = new OverlapArena(FRAME_HEADER_SIZE + MAX_FRAME_PAYLOAD);

  constructor(private readonly clock: Clock, private readonly model: SimLinkModel) {
    super();
    this.limit = model.sendBuffer ?? 256 * 1024;
  }

  write(parts: Buffer[]): boolean {
    if (this.closed) return false;
    let n = 0;
    for (const p of parts) n += p.length;
    const now = this.clock.now();
    this.settleLeft(now);
    this.busyUntil = Math.max(this.busyUntil, now) + (n * 8 * 1000) / this.model.bandwidthBps;
    this.fifo.push({ leaveAt: this.busyUntil, arriveAt: this.busyUntil + this.model.delayMs, parts, n });
    this.queued += n;
    const ok = this.queued < this.limit;
    if (!ok) this.blocked = true;
    this.schedule();
    return ok;
  }

  /** Frames whose last bit has left by `now` no longer count against the send buffer. */
  private settleLeft(now: number): void {
    while (this.leftUpTo < this.fifo.length && this.fifo[this.leftUpTo]!.leaveAt <= now) {
      this.queued -= this.fifo[this.leftUpTo]!.n;
      this.leftUpTo++;
    }
  }

  /**
   * When a refused sender may write again: the departure that brings the
   * queue down to half the send buffer. Departures are only events while a
   * sender waits; otherwise they are settled lazily (an unblocked sender
   * would ignore the drain), which halves the events per frame.
   */
  private drainAt(): number {
    if (!this.blocked) return Infinity;
    let q = this.queued;
    for (let i = this.leftUpTo; i < this.fifo.length; i++) {
      if (q <= this.limit / 2) return i === this.leftUpTo ? this.clock.now() : this.fifo[i - 1]!.leaveAt;
      q -= this.fifo[i]!.n;
    }
    return this.fifo.length > this.leftUpTo ? this.fifo[this.fifo.length - 1]!.leaveAt : this.clock.now();
  }

  private nextEventAt(): number {
    let t = this.drainAt();
    if (this.head < this.fifo.length) t = Math.min(t, this.fifo[this.head]!.arriveAt);
    return t;
  }

  private schedule(): void {
    const next = this.nextEventAt();
    if (next === Infinity || next >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = next;
    this.timer = this.clock.setTimer(Math.max(0, next - this.clock.now()), () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.tick();
    });
  }

  private tick(): void {
    const now = this.clock.now();
    this.settleLeft(now);
    while (this.head < this.leftUpTo && this.fifo[this.head]!.arriveAt <= now) {
      const e = this.fifo[this.head]!;
      this.fifo[this.head++] = undefined as unknown as Entry;
      if (!this.closed) this.peer.deliver(e.parts.length === 1 ? e.parts[0]! : joinFrame(this.peer.arena, e.parts, e.n));
    }
    // Compact now and then: the FIFO holds at most a window's worth of frames.
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.leftUpTo -= this.head;
      this.head = 0;
    }
    if (this.blocked && this.queued <= this.limit / 2) {
      this.blocked = false;
      this.drained();
    }
    this.schedule();
  }

  close(): void {
    if (this.closed) return;
    this.timer?.cancel();
    this.peer.timer?.cancel();
    this.closeBoth(this.peer);
  }
}

/**
 * Loss, as the rate it leaves a TCP flow (Mathis et al. 1997:
 * rate ≈ 1.22 · MSS / (RTT · √p)), capped at the link's bandwidth. The
 * simulator models loss this way, as a slower clean link, not as dropped frames.
 */
export function lossLimitedRate(bandwidthBps: number, rttMs: number, lossRate: number): number {
  if (!(lossRate >= 0 && lossRate < 1)) throw new RangeError(`loss rate must be from 0 to below 1 (got ${lossRate})`);
  if (lossRate === 0) return bandwidthBps;
  const mss = 1460;
  return Math.min(bandwidthBps, (1.22 * mss * 8) / (Math.max(rttMs, 1) / 1000 * Math.sqrt(lossRate)));
}

export function simLink(clock: Clock, model: SimLinkModel): [ByteTransport, ByteTransport] {
  if (!(model.bandwidthBps > 0) || !Number.isFinite(model.bandwidthBps)) throw new RangeError(`link bandwidth must be a positive finite rate (got ${model.bandwidthBps})`);
  if (!(model.delayMs >= 0)) throw new RangeError(`link delay must not be negative (got ${model.delayMs})`);
  const a = new Direction(clock, model);
  const b = new Direction(clock, model);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
