/**
 * The scheduling math of one direction of an emulated WAN link, pure: no
 * timers, no sockets, time passed in on every call.
 *
 * Model: a FIFO serialiser shared by everything sent in this direction,
 * running at `bandwidthBps`, followed by a fixed one-way propagation delay.
 * A byte that arrives at time a leaves the far end at
 *
 *     (time its serialisation completes) + delayMs
 *
 * where the serialiser takes bytes in arrival order, one after another, at
 * the current rate. So on an idle link a chunk of n bytes leaves at
 * a + n·8/bandwidth + delay, and behind a backlog it waits its turn.
 *
 * Chunks are cut into segments of about one millisecond of serialisation
 * (at least a 1500-byte packet, at most 64 KiB), so a large chunk trickles
 * out as a real link would deliver its packets instead of arriving whole
 * after its last byte. Each segment leaves as a unit when its last byte has
 * been serialised and has propagated.
 *
 * State is advanced lazily: `advance(now)` works the serialiser forward to
 * `now` at the rate in force, so a rate change (`setRate`) applies exactly
 * from the moment it is made, including to the rest of a segment that is
 * half serialised. A delay change applies to segments whose serialisation
 * ends after the change; segments already "on the wire" keep their arrival
 * time. Departures never reorder: a segment never leaves before the one in
 * front of it, even when the delay is lowered.
 *
 * A stall (`stall(now, ms)`) stops the link for `ms`: nothing is serialised
 * and nothing leaves until it ends; the bytes wait, none are lost. Bytes
 * that were due to leave during the stall leave when it ends; bytes that
 * were still queued resume serialisation when it ends.
 */

export interface Segment<T> {
  /** What the caller enqueued (e.g. a chunk of one connection). */
  readonly item: T;
  /** Byte range of `item` this segment carries: [offset, offset + length). */
  readonly offset: number;
  readonly length: number;
  /** When it was enqueued. */
  readonly arrival: number;
  /** When its last byte finished serialisation (set once serialised). */
  serialEnd: number;
  /** When it leaves the far end (set once serialised). */
  departAt: number;
}

export interface DirectionParams {
  bandwidthBps: number;
  /** One-way propagation delay (rtt / 2). */
  delayMs: number;
  /** Segment size; default: about 1 ms of serialisation, clamped to [1500, 65536] bytes. */
  segmentBytes?: number;
}

export const MIN_SEGMENT = 1500;
export const MAX_SEGMENT = 65536;

/** About one millisecond of serialisation at `bandwidthBps`, clamped to a packet .. 64 KiB. */
export function autoSegmentBytes(bandwidthBps: number): number {
  return Math.min(MAX_SEGMENT, Math.max(MIN_SEGMENT, Math.round(bandwidthBps / 8000)));
}

/** A FIFO of segments with O(1) push/shift (array with a moving head, compacted now and then). */
class Fifo<T> {
  private a: T[] = [];
  private h = 0;
  get length(): number {
    return this.a.length - this.h;
  }
  push(x: T): void {
    this.a.push(x);
  }
  peek(): T | undefined {
    return this.a[this.h];
  }
  last(): T | undefined {
    return this.a.length > this.h ? this.a[this.a.length - 1] : undefined;
  }
  shift(): T | undefined {
    if (this.h >= this.a.length) return undefined;
    const x = this.a[this.h]!;
    this.a[this.h] = undefined as T;
    this.h++;
    if (this.h > 1024 && this.h * 2 > this.a.length) {
      this.a = this.a.slice(this.h);
      this.h = 0;
    }
    return x;
  }
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.h; i < this.a.length; i++) yield this.a[i]!;
  }
  /** Keeps the elements for which `keep` is true; returns the removed ones. */
  filter(keep: (x: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (let i = this.h; i < this.a.length; i++) (keep(this.a[i]!) ? kept : removed).push(this.a[i]!);
    this.a = kept;
    this.h = 0;
    return removed;
  }
}

export class LinkDirection<T> {
  private bytesPerMs: number;
  private delay: number;
  private fixedSegment: number | undefined;
  private segmentBytes: number;
  /** Not yet fully serialised; the head may be partly done. */
  private readonly waiting = new Fifo<Segment<T>>();
  /** Serialised, propagating, departure time known. */
  private readonly inflight = new Fifo<Segment<T>>();
  /** Bytes of the waiting head already serialised (as of `cursor`). */
  private headDone = 0;
  /** Time up to which the serialiser has been worked. */
  private cursor = -Infinity;
  private lastDepart = -Infinity;
  private stallUntil = -Infinity;
  private waitingBytes = 0;
  private inflightBytes = 0;

  constructor(params: DirectionParams) {
    checkParams(params.bandwidthBps, params.delayMs);
    this.bytesPerMs = params.bandwidthBps / 8000;
    this.delay = params.delayMs;
    this.fixedSegment = params.segmentBytes;
    if (this.fixedSegment !== undefined && !(Number.isInteger(this.fixedSegment) && this.fixedSegment > 0)) {
      throw new RangeError(`segmentBytes must be a positive integer, got ${this.fixedSegment}`);
    }
    this.segmentBytes = this.fixedSegment ?? autoSegmentBytes(params.bandwidthBps);
  }

  get bandwidthBps(): number {
    return this.bytesPerMs * 8000;
  }
  get delayMs(): number {
    return this.delay;
  }
  /** Bytes enqueued and not yet taken out by takeDue (queued + propagating). */
  get heldBytes(): number {
    return this.waitingBytes + this.inflightBytes;
  }
  /** Bytes serialised and propagating. */
  get inflightBytesNow(): number {
    return this.inflightBytes;
  }
  /** Bytes not yet serialised, as of the last call that passed a time. */
  get backlogBytes(): number {
    return Math.max(0, this.waitingBytes - this.headDone);
  }
  /** The end of the current stall (-Infinity if none was ever set). */
  get stalledUntil(): number {
    return this.stallUntil;
  }
  /** Segments held (for tests and stats). */
  get segmentCount(): number {
    return this.waiting.length + this.inflight.length;
  }

  /** Puts `length` bytes of `item` on the link at `now`. A zero-length item (a marker such as end-of-stream) keeps its place in the order. */
  enqueue(now: number, item: T, length: number): void {
    if (!(length >= 0 && Number.isInteger(length))) throw new RangeError(`length must be a non-negative integer, got ${length}`);
    this.advance(now);
    const t = Math.max(now, this.cursor);
    if (length === 0) {
      this.waiting.push({ item, offset: 0, length: 0, arrival: t, serialEnd: NaN, departAt: NaN });
      return;
    }
    const seg = this.segmentBytes;
    for (let off = 0; off < length; off += seg) {
      const len = Math.min(seg, length - off);
      this.waiting.push({ item, offset: off, length: len, arrival: t, serialEnd: NaN, departAt: NaN });
    }
    this.waitingBytes += length;
  }

  /**
   * Removes and returns every segment that has left the far end by `now`, in
   * order. With `upTo` > now, also those due by then (a real timer's wake-up
   * tolerance: better a fraction of a millisecond early than a whole one late).
   */
  takeDue(now: number, upTo = now): Array<Segment<T>> {
    this.advance(now);
    const out: Array<Segment<T>> = [];
    for (let s = this.inflight.peek(); s && s.departAt <= upTo; s = this.inflight.peek()) {
      this.inflight.shift();
      this.inflightBytes -= s.length;
      out.push(s);
    }
    return out;
  }

  /** When the next segment leaves, if nothing changes meanwhile (Infinity when empty). */
  nextDueAt(): number {
    const f = this.inflight.peek();
    if (f) return f.departAt;
    const w = this.waiting.peek();
    if (!w) return Infinity;
    const begin = Math.max(this.cursor, w.arrival, this.stallUntil);
    const finish = begin + (w.length - this.headDone) / this.bytesPerMs;
    return Math.max(finish + this.delay, this.lastDepart, this.stallUntil);
  }

  /**
   * When the `n`-th byte (1-based) sent at `now` would leave, if it were
   * enqueued now behind what is queued and nothing changed meanwhile.
   * Ignores segmentation (segment granularity only rounds it up to its segment's end).
   */
  departureOfByte(now: number, n: number): number {
    this.advance(now);
    let busy = Math.max(now, this.cursor, this.stallUntil);
    const w = this.waiting.peek();
    if (w) {
      // The queue drains in order: the head's rest, then every other waiting segment.
      busy = Math.max(this.cursor, w.arrival, this.stallUntil) + this.backlogBytes / this.bytesPerMs;
      busy = Math.max(busy, now);
    }
    return Math.max(busy + n / this.bytesPerMs + this.delay, this.lastDepart, this.stallUntil);
  }

  /** Changes the rate from `now` on (the unserialised rest of everything queued goes at the new rate). */
  setRate(now: number, bandwidthBps: number): void {
    checkParams(bandwidthBps, this.delay);
    this.advance(now);
    this.bytesPerMs = bandwidthBps / 8000;
    this.segmentBytes = this.fixedSegment ?? autoSegmentBytes(bandwidthBps);
  }

  /** Changes the one-way delay for bytes whose serialisation ends after `now`. */
  setDelay(now: number, delayMs: number): void {
    checkParams(this.bandwidthBps, delayMs);
    this.advance(now);
    this.delay = delayMs;
  }

  /** Stops the link from `now` for `ms`: no serialisation, no departures. Overlapping stalls extend to the later end. */
  stall(now: number, ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms))) throw new RangeError(`stall duration must be a finite number >= 0, got ${ms}`);
    this.advance(now);
    const until = Math.max(this.stallUntil, now + ms);
    this.stallUntil = until;
    let last = -Infinity;
    for (const s of this.inflight) {
      if (s.departAt < until) s.departAt = until;
      last = s.departAt;
    }
    if (last > this.lastDepart) this.lastDepart = last;
  }

  /** Removes every held segment whose item matches (e.g. of a connection that was cut). Returns the bytes removed. */
  drop(now: number, match: (item: T) => boolean): number {
    this.advance(now);
    let bytes = 0;
    const head = this.waiting.peek();
    const removedWaiting = this.waiting.filter((s) => !match(s.item));
    for (const s of removedWaiting) bytes += s.length;
    this.waitingBytes -= bytes;
    if (head && removedWaiting[0] === head) this.headDone = 0;
    let inflight = 0;
    for (const s of this.inflight.filter((s) => !match(s.item))) inflight += s.length;
    this.inflightBytes -= inflight;
    return bytes + inflight;
  }

  /** Works the serialiser forward to `now`. Time never goes backwards: an earlier `now` is treated as the latest seen. */
  advance(now: number): void {
    if (!(now >= this.cursor)) {
      if (Number.isNaN(now)) throw new RangeError('time is NaN');
      return;
    }
    let t = this.cursor;
    for (let s = this.waiting.peek(); s; s = this.waiting.peek()) {
      const begin = Math.max(t, s.arrival, this.stallUntil);
      const finish = begin + (s.length - this.headDone) / this.bytesPerMs;
      if (finish > now) {
        if (begin < now) this.headDone += (now - begin) * this.bytesPerMs;
        break;
      }
      this.waiting.shift();
      this.waitingBytes -= s.length;
      this.headDone = 0;
      s.serialEnd = finish;
      s.departAt = Math.max(finish + this.delay, this.lastDepart, this.stallUntil);
      this.lastDepart = s.departAt;
      this.inflight.push(s);
      this.inflightBytes += s.length;
      t = finish;
    }
    this.cursor = now;
  }
}

function checkParams(bandwidthBps: number, delayMs: number): void {
  if (!(bandwidthBps > 0 && Number.isFinite(bandwidthBps))) throw new RangeError(`bandwidth must be a positive finite number of bits/s, got ${bandwidthBps}`);
  if (!(delayMs >= 0 && Number.isFinite(delayMs))) throw new RangeError(`delay must be a finite number of ms >= 0, got ${delayMs}`);
}
