/**
 * The simulated VM: replays a request source (a profile's generator or an FIU
 * trace) open-loop on the virtual clock against the source's VM-facing disk,
 * and moves to the target's when the source turns it away (ESHUTDOWN), as
 * the real executor does. Each request costs a modelled device time before it
 * reaches the disk stack (the stack itself adds what migration adds: held I/O
 * at cut-over, on-demand fetches in post-copy).
 *
 * Response times (scheduled arrival → completion) are summed per window: the
 * requests that arrived before the migration, and those that arrived while it
 * ran. `guest_slowdown` is not decided here: it compares the migration
 * window with the same window of a paired control run (control-run.ts), the
 * same requests without a migration. (Comparing with the warm-up before the
 * migration would compare different requests: on a bursty trace that read
 * thousands of times too high.)
 */
import type { Disk } from '../block/disk.ts';
import { FlimcdError } from '../errors.ts';
import { NbdErrno, nbdErrnoOf } from '../nbd/errno.ts';
import type { VirtualClock } from '../util/clock.ts';
import { sleep } from '../util/clock.ts';
import type { RequestSource } from '../workload/executor.ts';
import type { WorkloadRequest } from '../workload/generator.ts';
import { Kind, stamp } from './content-model.ts';

export interface SimVmOptions {
  clock: VirtualClock;
  source: Disk;
  target: Disk;
  requests: RequestSource;
  /** Most requests in flight; later arrivals queue (default 32). */
  queueDepth?: number;
  /** Modelled device time per request (default 0.1 ms + 0.01 ms per 4 KiB). */
  deviceMs?: (r: WorkloadRequest) => number;
  /** Most requests waiting for a slot; beyond it arrivals are dropped and counted (bounds memory in long stalls). */
  maxBacklog?: number;
}

interface Window {
  n: number;
  sum: number;
  max: number;
}

export class SimVm {
  private readonly t0: number;
  private onTarget = false;
  private stopped = false;
  private inFlight = 0;
  /** Read buffers by length (readSink). */
  private readonly sinks = new Map<number, Buffer>();
  private readonly backlog: Array<{ r: WorkloadRequest; at: number }> = [];
  private pending: WorkloadRequest | undefined;
  private timer: { cancel(): void } | undefined;
  private migrationFrom: number | undefined;
  private migrationTo: number | undefined;
  private readonly before: Window = { n: 0, sum: 0, max: 0 };
  private readonly during: Window = { n: 0, sum: 0, max: 0 };
  private idleWaiter: (() => void) | undefined;
  readonly counts = { reads: 0, writes: 0, dropped: 0, errors: 0, switchedAtMs: NaN };

  constructor(private readonly o: SimVmOptions) {
    this.t0 = o.clock.now();
  }

  start(): void {
    this.pending = this.o.requests.next();
    this.arm();
  }

  /** Marks the migration window (for the slowdown measure). */
  migrationStarted(): void {
    this.migrationFrom = this.o.clock.now();
  }

  migrationEnded(): void {
    this.migrationTo = this.o.clock.now();
  }

  /** Stops issuing; resolves when in-flight requests completed. */
  stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.backlog.length = 0;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => (this.idleWaiter = r));
  }

  /** The migration window, ms since this VM started (for a control run's marks). */
  window(): { fromMs: number; toMs: number } | undefined {
    if (this.migrationFrom === undefined || this.migrationTo === undefined) return undefined;
    return { fromMs: this.migrationFrom - this.t0, toMs: this.migrationTo - this.t0 };
  }

  /** `control`: the same window's mean response time without a migration (control-run.ts); guest_slowdown is null without it. */
  stats(control?: number | null) {
    const mean = (w: Window) => (w.n ? w.sum / w.n : null);
    const b = mean(this.before);
    const d = mean(this.during);
    return {
      ...this.counts,
      response_before_ms: b,
      response_during_ms: d,
      response_during_max_ms: this.during.n ? this.during.max : null,
      response_control_ms: control ?? null,
      guest_slowdown: control && d !== null ? d / control : null,
    };
  }

  private arm(): void {
    if (this.stopped || !this.pending) return;
    const at = this.t0 + this.pending.atMs;
    this.timer = this.o.clock.setTimer(at - this.o.clock.now(), () => {
      const now = this.o.clock.now();
      while (this.pending && this.t0 + this.pending.atMs <= now) {
        const r = this.pending;
        if (this.inFlight < (this.o.queueDepth ?? 32)) void this.issue(r, this.t0 + r.atMs);
        else if (this.backlog.length < (this.o.maxBacklog ?? 100_000)) this.backlog.push({ r, at: this.t0 + r.atMs });
        else this.counts.dropped++;
        this.pending = this.o.requests.next();
      }
      this.arm();
    });
  }

  private async issue(r: WorkloadRequest, arrivedAt: number): Promise<void> {
    this.inFlight++;
    try {
      await sleep(this.o.clock, this.o.deviceMs ? this.o.deviceMs(r) : 0.1 + r.length / 409600);
      if (r.op === 'read') {
        this.counts.reads++;
        await this.io((d) => d.read(r.offset, this.readSink(r.length)));
      } else {
        this.counts.writes++;
        // Zero-filled so no stale token hides in it; the write token says what content it carries.
        const data = Buffer.alloc(r.length);
        stamp(data, 0, Kind.WRITE, r.tag, 0);
        await this.io((d) => d.write(r.offset, data));
      }
      this.record(arrivedAt);
    } catch {
      this.counts.errors++;
    } finally {
      this.inFlight--;
      const next = this.backlog.shift();
      if (next && !this.stopped) void this.issue(next.r, next.at);
      else if (this.inFlight === 0) this.idleWaiter?.();
    }
  }

  /**
   * Where the VM's reads land: nothing reads them back (the disk stack only
   * writes into them), so reads of one length share a buffer instead of
   * allocating one each.
   */
  private readSink(length: number): Buffer {
    let b = this.sinks.get(length);
    if (!b) {
      b = Buffer.allocUnsafe(length);
      if (this.sinks.size < 256) this.sinks.set(length, b);
    }
    return b;
  }

  private record(arrivedAt: number): void {
    const ms = this.o.clock.now() - arrivedAt;
    const w = this.migrationFrom === undefined || arrivedAt < this.migrationFrom ? this.before : this.migrationTo === undefined || arrivedAt < this.migrationTo ? this.during : undefined;
    if (!w) return;
    w.n++;
    w.sum += ms;
    if (ms > w.max) w.max = ms;
  }

  private async io(op: (d: Disk) => Promise<void>): Promise<void> {
    for (;;) {
      const onTarget = this.onTarget;
      try {
        return await op(onTarget ? this.o.target : this.o.source);
      } catch (e) {
        if (!onTarget && e instanceof FlimcdError && nbdErrnoOf(e) === NbdErrno.ESHUTDOWN) {
          if (!this.onTarget) {
            this.onTarget = true;
            this.counts.switchedAtMs = this.o.clock.now() - this.t0;
          }
          continue;
        }
        throw e;
      }
    }
  }
}
