/**
 * One simulated migration: the real SourceEngine and TargetEngine, the real
 * filters (tracking, gate, post-copy), the real Channel and message encoders,
 * and the real policies, on a VirtualClock, over a modelled link
 * (sim-link.ts: per-direction serialisation at the bandwidth,
 * one-way delay RTT/2, bounded send buffer), with a modelled disk
 * (sim-disk.ts: content identity, no bytes) and a modelled VM (sim-vm.ts).
 *
 * What is modelled, and how:
 * - bytes: none are stored; every block buffer has its real length and
 *   carries a token (content-model.ts), so frame sizes, windows and queues are
 *   the real ones, and wire bytes are counted by the real channel.
 * - hashing and zstd: replaced by the token's id and modelled size (the
 *   image model measured them, or uses image-gen's ratios). CPU time for
 *   hashing, compression and disk I/O is zero on the virtual clock.
 * - the link: bandwidth and delay; loss only as the lower rate it leaves a
 *   TCP flow (Mathis); no TCP slow start.
 * - the disk: a fixed device time per VM request; engine reads are free.
 *
 * Virtual time moves only when nothing else can: the loop lets every pending
 * promise and callback run, then fires the next timer (runVirtual). The
 * engines' async code runs unchanged.
 */
import type { Channel } from '../wire/channel.ts';
import { lossLimitedRate, simLink } from './sim-link.ts';
import { VirtualClock } from '../util/clock.ts';
import type { SourceEngine } from '../migrate/source-engine.ts';
import type { TargetEngine } from '../migrate/target-engine.ts';
import { buildSourceDisks, buildSourceSession, buildTargetDisks, buildTargetSession } from '../migrate/stack.ts';
import { LocalContent } from '../migrate/local-content.ts';
import { MemoryReplicaIndex } from '../replica-index/memory-index.ts';
import { indexDisk } from '../replica-index/image-scan.ts';
import { BASE_IMAGE_PATH } from './base-image.ts';
import { resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import type { PrefetchConfig } from '../policy/prefetch.ts';
import type { CutoverConfig } from '../policy/cutover.ts';
import type { MigrationReport } from '../migrate/report.ts';
import type { RequestSource } from '../workload/executor.ts';
import { log as rootLog } from '../util/log.ts';
import { ErrorCode, FlimcdError } from '../errors.ts';
import { modelledRuntime } from './content-model.ts';
import { SimDisk } from './sim-disk.ts';
import { SimVm } from './sim-vm.ts';
import { controlResponseMs } from './control-run.ts';

export interface SimulationOptions {
  /** The source image's content (modelled); not modified. */
  image: SimDisk;
  /** The target image's starting content (an old copy), if any. */
  targetImage?: SimDisk;
  /**
   * A base image the target holds as a separate file, registered in its
   * replica index (base-image.ts): the target's LocalContent finds content
   * in it through the same index lookup and re-hash as a real agent's.
   */
  baseImage?: SimDisk;
  algorithm: Algorithm;
  features?: Partial<Features>;
  bandwidthBps: number;
  rttMs: number;
  /** Packet loss rate 0..1: modelled as the rate it leaves a TCP flow (sim-link.ts lossLimitedRate). */
  lossRate?: number;
  /** A fresh request source for this run (generator or trace replay); none = an idle VM. */
  requests?: RequestSource;
  /** Another fresh source of the same requests, for the paired control run guest_slowdown needs (control-run.ts); without it guest_slowdown is null. */
  controlRequests?: RequestSource;
  /** Virtual time the VM runs before the migration starts (heat map fills); default 10 s. */
  warmupMs?: number;
  prefetch?: Partial<PrefetchConfig>;
  cutover?: Partial<CutoverConfig>;
  /** Give up after this much virtual time (default 48 h). */
  limitMs?: number;
  queueDepth?: number;
}

export interface SimulationResult {
  report: MigrationReport;
  guest: ReturnType<SimVm['stats']>;
  /** Wall-clock seconds the simulation took. */
  wall_s: number;
  /** Timer events fired. */
  events: number;
}

/** Timer events fired per turn of the event loop (see runVirtual). */
const EVENTS_PER_TURN = 512;

/**
 * Runs `until` to completion on `clock`: callbacks first, then the next timer.
 *
 * "Callbacks first" means every promise continuation the last timer set off
 * has run before the next timer fires. Node drains the microtask queue (and
 * process.nextTick) between two setImmediate callbacks, and nothing on the
 * simulated path defers work any other way (no real I/O, timers or
 * immediates: they all go through the VirtualClock). So one loop turn queues
 * a batch of immediates, each firing one timer, instead of paying a whole
 * event-loop turn (poll phase included) per event.
 */
export async function runVirtual<T>(clock: VirtualClock, until: Promise<T>, limitMs: number): Promise<{ value: T; events: number }> {
  let settled = false;
  void until.then(() => (settled = true), () => (settled = true));
  let events = 0;
  let failure: FlimcdError | undefined;
  const end = clock.now() + limitMs;
  const fireOne = (): void => {
    if (settled || failure) return;
    const at = clock.nextAt();
    if (at === undefined) failure = new FlimcdError('simulation stalled: nothing is pending and the migration has not finished', ErrorCode.SIM_STALLED);
    else if (at > end) failure = new FlimcdError(`simulation did not finish within ${(limitMs / 3.6e6).toFixed(1)} h of simulated time`, ErrorCode.SIM_LIMIT);
    else {
      clock.step();
      events++;
    }
  };
  while (!settled) {
    await new Promise<void>((resolve) => {
      for (let i = 0; i < EVENTS_PER_TURN - 1; i++) setImmediate(fireOne);
      setImmediate(() => {
        fireOne();
        resolve();
      });
    });
    if (failure) throw failure;
  }
  return { value: await until, events };
}

export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  const wall0 = performance.now();
  const clock = new VirtualClock();
  const runtime = modelledRuntime(clock);
  const bs = o.image.unit;
  const features = resolveFeatures(o.algorithm, o.features);
  const quiet = rootLog.child({ sim: o.algorithm });
  quiet.level = 'silent';

  const srcImage = new SimDisk(o.image.size, bs);
  srcImage.copyFrom(o.image);
  const tgtImage = new SimDisk(o.image.size, bs);
  if (o.targetImage) tgtImage.copyFrom(o.targetImage);
  const sourceDisks = buildSourceDisks({ runtime, image: srcImage, blockSize: bs });
  const srcGate = sourceDisks.gate;
  const [a, b] = simLink(clock, { bandwidthBps: lossLimitedRate(o.bandwidthBps, o.rttMs, o.lossRate ?? 0), delayMs: o.rttMs / 2 });
  let target: TargetEngine | undefined;
  const targetDisks = buildTargetDisks({ runtime, image: tgtImage, blockSize: bs, engine: () => target });
  const tgtGate = targetDisks.gate;
  let index: MemoryReplicaIndex | undefined;
  let baseDisk: SimDisk | undefined;
  if (o.baseImage) {
    if (o.baseImage.size !== o.image.size || o.baseImage.unit !== bs) {
      throw new FlimcdError('simulation: the base image must have the image\'s size and block size', ErrorCode.SIM_BASE);
    }
    baseDisk = new SimDisk(o.baseImage.size, bs);
    baseDisk.copyFrom(o.baseImage);
    // What `flimcd index add` does at a real target, before the migration (its time is not migration time).
    index = new MemoryReplicaIndex();
    await indexDisk(index, BASE_IMAGE_PATH, baseDisk, bs, runtime.content);
  }
  const openReplica = async (path: string) => {
    if (baseDisk && path === BASE_IMAGE_PATH) return baseDisk;
    throw new FlimcdError(`simulation: no modelled replica file ${path}`, ErrorCode.SIM_REPLICA);
  };
  const local = new LocalContent({ image: tgtImage, imagePath: '/nonexistent/flimcd-sim-target.img', blockSize: bs, content: runtime.content, preexisting: o.targetImage !== undefined, index, openReplica, log: quiet });
  const vm = o.requests ? new SimVm({ clock, source: srcGate, target: tgtGate, requests: o.requests, queueDepth: o.queueDepth }) : undefined;
  let events = 0;
  let srcCh: Channel | undefined;
  let tgtCh: Channel | undefined;
  try {
    vm?.start();
    const warm = runVirtual(clock, new Promise<void>((r) => clock.setTimer(o.warmupMs ?? 10_000, r)), o.limitMs ?? 48 * 3.6e6);
    events += (await warm).events;
    // The engines start after the warm-up: the source engine's clock and dirty tracking start with it.
    const abortOnLoss = (e: Error | undefined, s: { engine: SourceEngine | TargetEngine }) => { if (e) s.engine.abort(e.message); };
    const sourceSession = buildSourceSession({
      runtime, disks: sourceDisks, channel: { onDisconnect: abortOnLoss },
      engine: { algorithm: o.algorithm, features, blockSize: bs, bandwidthBps: o.bandwidthBps, cutover: o.cutover, log: quiet, targetHasReplicas: features.dedup && local.hasCandidates },
    });
    const targetSession = buildTargetSession({
      runtime, disks: targetDisks, channel: { onDisconnect: abortOnLoss },
      engine: { log: quiet, features, prefetch: o.prefetch, local: features.dedup ? local : undefined },
    });
    const source = sourceSession.engine;
    target = targetSession.engine;
    srcCh = sourceSession.channel;
    tgtCh = targetSession.channel;
    srcCh.attach(a);
    tgtCh.attach(b);
    vm?.migrationStarted();
    const tgt = target;
    const run = source.run().then(async (report) => {
      await tgt.result;
      return report;
    });
    const done = await runVirtual(clock, run, o.limitMs ?? 48 * 3.6e6);
    events += done.events;
    vm?.migrationEnded();
    const stopping = vm?.stop() ?? Promise.resolve();
    events += (await runVirtual(clock, stopping, 60_000)).events;
    const window = vm?.window();
    const control = window && o.controlRequests ? await controlResponseMs({ image: o.image, requests: o.controlRequests, window, queueDepth: o.queueDepth }) : null;
    return { report: done.value, guest: vm?.stats(control) ?? new SimVm({ clock, source: srcGate, target: tgtGate, requests: { next: () => undefined } }).stats(), wall_s: (performance.now() - wall0) / 1000, events };
  } finally {
    srcCh?.close();
    tgtCh?.close();
  }
}
