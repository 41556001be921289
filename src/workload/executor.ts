/**
 * Runs a request schedule (generator.ts) against a Disk the way a guest would:
 * open loop (requests arrive on their schedule whether or not earlier ones
 * finished), at most `queueDepth` in flight, every read verified against the
 * model of expected content (expected.ts), latency and throughput measured,
 * and a per-second time series kept for guest slow-down measurements.
 *
 * Ordering. Requests are issued in schedule order. A request that overlaps an
 * in-flight write, or a write that overlaps any in-flight request, waits
 * until the conflicting request completes (and holds back those behind it,
 * as a guest's queue would). So no read ever races a write and the model
 * has one correct answer for every page read (see expected.ts).
 *
 * Latency is measured two ways: `latency` from issue to completion (what the
 * disk took) and `response` from the scheduled arrival to completion (what
 * the guest sees, including time queued behind a full queue, behind a
 * conflicting request, or in a stall; on the real clock it also includes up
 * to ~1 ms of timer granularity, since arrivals are released by setTimeout).
 *
 * Switch-over. With `switchTo`, a request that fails on the primary with
 * ESHUTDOWN (nbdErrno 108, how a source agent tells the VM it has cut over)
 * or because the primary's connection is gone makes the executor connect to
 * the secondary once (`switchTo()`), then re-issue that request and every
 * later one there. Requests issued while switching wait for it. Requests that
 * completed on the primary are taken as done (the migration carries them);
 * a primary completion arriving after the switch began is counted
 * (`lateCompletionsOnPrimary`) but not repeated, so verification shows
 * whether the migration kept such writes.
 *
 * pause() stops issuing (in-flight requests finish) and freezes the
 * schedule: after resume() requests continue where they were, as a resumed
 * VM's would, so a pause lengthens the run. stop() ends it early.
 */
import type { Disk } from '../block/disk.ts';
import { FlimcdError, toFlimcdError } from '../errors.ts';
import { NbdErrno, nbdErrnoOf } from '../nbd/errno.ts';
import { fillContent } from './content.ts';
import { DirtyMeter } from './dirty-meter.ts';
import type { ExpectedDisk, VerifyStats } from './expected.ts';
import type { WorkloadRequest } from './generator.ts';
import { LatencyHistogram, type LatencySummary } from './latency.ts';
import { realClock, sleep, type Clock } from '../util/clock.ts';

/** Anything that hands out requests in time order (a RequestGenerator is one). */
export interface RequestSource {
  next(): WorkloadRequest | undefined;
}

export interface ExecutorOptions {
  disk: Disk;
  /** Connects to the disk the VM continues on after a cut-over. */
  switchTo?: () => Promise<Disk>;
  requests: RequestSource;
  /** Requests scheduled at or after this (ms from the start, pauses excluded) are not issued. */
  durationMs: number;
  /** The content model; its seed must be the generator's seed. */
  expected: ExpectedDisk;
  queueDepth?: number;
  /** Time, injected: the executor reads no clock of its own (default: the real clock). */
  clock?: Clock;
  /** Tracking block size for the dirty-rate measurement (default 64 KiB). */
  blockSize?: number;
  /** Called once per elapsed second with that second's numbers. */
  onSecond?: (s: SecondStats) => void;
}

export interface SecondStats {
  /** Index of the second since the start (0-based). */
  second: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Mean and max response time (scheduled arrival → completion) of requests completed in this second. */
  meanLatencyMs: number;
  maxLatencyMs: number;
  /** Distinct bytes newly dirtied in this second (64 KiB blocks). */
  dirtiedBytes: number;
  /** Requests waiting or in flight at the end of the second. */
  backlog: number;
  /** Which disk served completions: 'primary', 'secondary' or 'both' (the switch second). */
  disk: 'primary' | 'secondary' | 'both' | 'none';
}

export interface SwitchOverStats {
  /** When the first cut-over error arrived, ms since the start. */
  atMs: number;
  /** How long switchTo() took (connecting to the secondary). */
  connectMs: number;
  /** Gap in completions: last completion on the primary → first on the secondary. */
  stallMs: number;
  /** Requests that failed on the primary and were issued again on the secondary. */
  reissued: number;
  /** Requests the primary completed after the switch began (writes among them may be lost by a faulty migration). */
  lateCompletionsOnPrimary: number;
  /** The error that triggered the switch. */
  reason: string;
}

export interface ExecutorResult {
  /** Wall time from start until the last request completed. */
  elapsedMs: number;
  /** Time spent paused. */
  pausedMs: number;
  ops: number;
  reads: number;
  writes: number;
  /** Writes flagged as duplicating existing content. */
  dupWrites: number;
  bytesRead: number;
  bytesWritten: number;
  iops: number;
  /** Megabytes (10^6) per second, reads and writes. */
  mbPerSecond: number;
  /** Issue → completion. */
  latency: { read: LatencySummary; write: LatencySummary };
  /** Scheduled arrival → completion. */
  response: { read: LatencySummary; write: LatencySummary };
  /** Achieved distinct bytes newly dirtied per second (dirty-meter.ts definition, by completion time). */
  dirtiedBytesPerSecond: number;
  perSecond: SecondStats[];
  switchOver: SwitchOverStats | undefined;
  verify: VerifyStats;
  /** Ended by stop() (or an error) before the schedule ran out. */
  stopped: boolean;
  /** The error that ended the run, if one did; the run's numbers up to it are still valid. */
  error: FlimcdError | undefined;
}

/** How long a failed request waits to see whether the primary's connection is closing (a hang-up). */
const CLOSE_GRACE_MS = 250;

interface Slot {
  offset: number;
  end: number;
  write: boolean;
}

class Bucket {
  reads = 0;
  writes = 0;
  bytesRead = 0;
  bytesWritten = 0;
  latSum = 0;
  latMax = 0;
  dirtied = 0;
  primary = 0;
  secondary = 0;
  backlog = 0;
}

export class WorkloadExecutor {
  private readonly opts: ExecutorOptions;
  private readonly clock: Clock;
  private readonly qd: number;
  private readonly expected: ExpectedDisk;
  private readonly primary: Disk;
  private current: Disk;
  private readonly inflight: Slot[] = [];
  private readonly meter: DirtyMeter;
  private readonly latRead = new LatencyHistogram();
  private readonly latWrite = new LatencyHistogram();
  private readonly svcRead = new LatencyHistogram();
  private readonly svcWrite = new LatencyHistogram();
  private readonly buckets: Bucket[] = [];
  private t0 = 0;
  private started = false;
  private finished = false;
  private markFinished: () => void = () => {};
  private readonly finishedPromise = new Promise<void>((resolve) => (this.markFinished = resolve));
  private stopped = false;
  private pausedAt: number | undefined;
  private pausedTotal = 0;
  private waiting = 0;
  private wake: (() => void) | undefined;
  private wakePromise: Promise<void> | undefined;
  private switching: Promise<void> | undefined;
  private switchStats: SwitchOverStats | undefined;
  private switchBegan = false;
  private lastPrimaryCompletion: number | undefined;
  private firstSecondaryCompletion: number | undefined;
  private error: FlimcdError | undefined;
  private counts = { reads: 0, writes: 0, dupWrites: 0, bytesRead: 0, bytesWritten: 0 };

  constructor(opts: ExecutorOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.qd = Math.max(1, Math.floor(opts.queueDepth ?? 16));
    this.expected = opts.expected;
    this.primary = opts.disk;
    this.current = opts.disk;
    this.meter = new DirtyMeter(opts.disk.size, { blockSize: opts.blockSize ?? 65536, windowMs: 1000 });
  }

  /** The disk requests go to now. */
  get disk(): Disk {
    return this.current;
  }

  get switched(): boolean {
    return this.current !== this.primary;
  }

  get inFlight(): number {
    return this.inflight.length;
  }

  get paused(): boolean {
    return this.pausedAt !== undefined;
  }

  pause(): void {
    if (this.pausedAt === undefined) this.pausedAt = this.clock.now();
  }

  resume(): void {
    if (this.pausedAt === undefined) return;
    this.pausedTotal += this.clock.now() - this.pausedAt;
    this.pausedAt = undefined;
    this.signal();
  }

  /** Stops issuing; run() resolves once in-flight requests are done. */
  stop(): void {
    this.stopped = true;
    this.signal();
  }

  /** Runs the schedule to its end (or stop()/an error) and reports. Call once. */
  async run(): Promise<ExecutorResult> {
    if (this.started) throw new Error('WorkloadExecutor.run() called twice');
    this.started = true;
    const clock = this.clock;
    this.t0 = clock.now();
    const ticker = this.tick();
    const src = this.opts.requests;
    let next = src.next();
    while (next && !this.stopped && next.atMs < this.opts.durationMs) {
      this.waiting = 1;
      for (;;) {
        if (this.stopped) break;
        if (this.pausedAt !== undefined || this.switching) {
          await this.changed();
          continue;
        }
        const due = this.t0 + this.pausedTotal + next.atMs;
        const now = clock.now();
        if (now < due) {
          // Completions cannot make a request due sooner; stop() and pause() are seen within 100 ms.
          await sleep(clock, Math.min(due - now, 100));
          continue;
        }
        if (this.inflight.length >= this.qd || this.conflicts(next)) {
          await this.changed();
          continue;
        }
        break;
      }
      this.waiting = 0;
      if (this.stopped) break;
      this.issue(next);
      next = src.next();
    }
    const ranOut = !this.stopped;
    while (this.inflight.length > 0) await this.changed();
    this.finished = true;
    this.markFinished();
    await ticker;
    return this.result(!ranOut);
  }

  // ---------------------------------------------------------------- internals

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    this.wakePromise = undefined;
    w?.();
  }

  /** Resolves at the next completion, pause/resume/stop, or switch. */
  private changed(): Promise<void> {
    this.wakePromise ??= new Promise<void>((resolve) => (this.wake = resolve));
    return this.wakePromise;
  }

  private conflicts(r: WorkloadRequest): boolean {
    const start = r.offset;
    const end = r.offset + r.length;
    const write = r.op === 'write';
    for (const s of this.inflight) {
      if ((write || s.write) && s.offset < end && start < s.end) return true;
    }
    return false;
  }

  private bucket(at: number): Bucket {
    const k = Math.max(0, Math.floor((at - this.t0) / 1000));
    while (this.buckets.length <= k) this.buckets.push(new Bucket());
    return this.buckets[k]!;
  }

  private issue(r: WorkloadRequest): void {
    const slot: Slot = { offset: r.offset, end: r.offset + r.length, write: r.op === 'write' };
    this.inflight.push(slot);
    const arrival = this.t0 + this.pausedTotal + r.atMs;
    this.execute(r, arrival).then(
      () => this.release(slot),
      (e) => {
        this.error ??= toFlimcdError(e);
        this.stopped = true;
        this.release(slot);
      },
    );
  }

  private release(slot: Slot): void {
    const i = this.inflight.indexOf(slot);
    if (i >= 0) this.inflight.splice(i, 1);
    this.signal();
  }

  private async execute(r: WorkloadRequest, arrival: number): Promise<void> {
    const write = r.op === 'write';
    const buf = Buffer.allocUnsafe(r.length);
    if (write) fillContent(this.expected.seed, r.tag, r.offset, buf);
    let issued = this.clock.now();
    let disk: Disk;
    for (;;) {
      if (this.switching) await this.switching;
      disk = this.current;
      try {
        if (write) await disk.write(r.offset, buf);
        else await disk.read(r.offset, buf);
        break;
      } catch (e) {
        if (!(await this.retryable(e, disk))) throw e;
        await this.switchFrom(disk, e);
        if (this.switchStats) this.switchStats.reissued++;
        issued = this.clock.now();
      }
    }
    const done = this.clock.now();
    if (disk === this.primary) {
      if (this.switchBegan && this.switchStats) this.switchStats.lateCompletionsOnPrimary++;
      else this.lastPrimaryCompletion = done;
    } else if (this.firstSecondaryCompletion === undefined) {
      this.firstSecondaryCompletion = done;
      if (this.switchStats) this.switchStats.stallMs = done - (this.lastPrimaryCompletion ?? this.t0);
    }
    const lat = done - arrival;
    const svc = done - issued;
    const b = this.bucket(done);
    b.latSum += lat;
    if (lat > b.latMax) b.latMax = lat;
    if (disk === this.primary) b.primary++;
    else b.secondary++;
    if (write) {
      this.expected.recordWrite(r.offset, r.length, r.tag);
      b.dirtied += this.meter.write(done - this.t0, r.offset, r.length);
      this.latWrite.record(lat);
      this.svcWrite.record(svc);
      this.counts.writes++;
      this.counts.bytesWritten += r.length;
      if (r.dup) this.counts.dupWrites++;
      b.writes++;
      b.bytesWritten += r.length;
    } else {
      await this.expected.check(r.offset, buf);
      this.latRead.record(lat);
      this.svcRead.record(svc);
      this.counts.reads++;
      this.counts.bytesRead += r.length;
      b.reads++;
      b.bytesRead += r.length;
    }
  }

  /**
   * Whether a failure on `disk` means "continue on the secondary": ESHUTDOWN,
   * or the primary's connection is gone (an NbdClient's `closed` settles; the
   * request may fail a moment before the socket reports closed, so wait briefly).
   */
  private async retryable(e: unknown, disk: Disk): Promise<boolean> {
    if (!this.opts.switchTo) return false;
    if (disk !== this.primary) return false;
    if (this.current !== this.primary || this.switchBegan) return true; // already switching or switched away
    if (e instanceof FlimcdError && nbdErrnoOf(e) === NbdErrno.ESHUTDOWN) return true;
    const conn = disk as { isClosed?: unknown; closed?: unknown };
    if (conn.isClosed === true) return true;
    if (conn.closed instanceof Promise) {
      return Promise.race([conn.closed.then(() => true), sleep(this.clock, CLOSE_GRACE_MS).then(() => false)]);
    }
    return false;
  }

  private switchFrom(disk: Disk, cause: unknown): Promise<void> {
    if (this.current !== disk) return Promise.resolve();
    if (!this.switching) {
      this.switchBegan = true;
      const began = this.clock.now();
      this.switchStats = {
        atMs: began - this.t0, connectMs: 0, stallMs: 0, reissued: 0, lateCompletionsOnPrimary: 0,
        reason: cause instanceof Error ? cause.message : String(cause),
      };
      const stats = this.switchStats;
      this.switching = (async () => {
        try {
          const next = await this.opts.switchTo!();
          stats.connectMs = this.clock.now() - began;
          this.current = next;
        } finally {
          this.switching = undefined;
          this.signal();
        }
      })();
    }
    return this.switching;
  }

  /** Emits per-second stats as seconds elapse. */
  private async tick(): Promise<void> {
    let k = 0;
    while (!this.finished) {
      const due = this.t0 + (k + 1) * 1000;
      const now = this.clock.now();
      if (now < due) {
        await Promise.race([sleep(this.clock, Math.min(due - now, 250)), this.finishedPromise]);
        continue;
      }
      this.bucket(due - 1).backlog = this.inflight.length + this.waiting;
      this.opts.onSecond?.(this.secondStats(k));
      k++;
    }
  }

  private secondStats(k: number): SecondStats {
    const b = this.buckets[k] ?? new Bucket();
    const n = b.reads + b.writes;
    return {
      second: k, reads: b.reads, writes: b.writes, bytesRead: b.bytesRead, bytesWritten: b.bytesWritten,
      meanLatencyMs: n ? b.latSum / n : 0, maxLatencyMs: b.latMax, dirtiedBytes: b.dirtied, backlog: b.backlog,
      disk: b.primary && b.secondary ? 'both' : b.secondary ? 'secondary' : b.primary ? 'primary' : 'none',
    };
  }

  private result(stopped: boolean): ExecutorResult {
    const elapsed = this.clock.now() - this.t0;
    const c = this.counts;
    const ops = c.reads + c.writes;
    const secs = elapsed / 1000;
    const dirtied = this.buckets.reduce((a, b) => a + b.dirtied, 0);
    const v = this.expected.stats;
    return {
      elapsedMs: elapsed,
      pausedMs: this.pausedTotal,
      ops, reads: c.reads, writes: c.writes, dupWrites: c.dupWrites, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten,
      iops: secs > 0 ? ops / secs : 0,
      mbPerSecond: secs > 0 ? (c.bytesRead + c.bytesWritten) / 1e6 / secs : 0,
      latency: { read: this.svcRead.summary(), write: this.svcWrite.summary() },
      response: { read: this.latRead.summary(), write: this.latWrite.summary() },
      dirtiedBytesPerSecond: secs > 0 ? dirtied / secs : 0,
      perSecond: this.buckets.map((_, k) => this.secondStats(k)),
      switchOver: this.switchStats ? { ...this.switchStats } : undefined,
      verify: { ...v, firstMismatches: [...v.firstMismatches] },
      stopped: stopped || this.error !== undefined,
      error: this.error,
    };
  }
}

/** Convenience: build and run an executor. */
export function runWorkload(opts: ExecutorOptions): Promise<ExecutorResult> {
  return new WorkloadExecutor(opts).run();
}
