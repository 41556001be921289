/**
 * An in-process migration: source and target stacks (src/migrate/stack.ts)
 * over a memory link, each side's VM-facing disk exposed, and the workload
 * executor as the VM: it writes and reads through every phase, switching to
 * the target when the source turns it away, and checks every read against
 * the model of what the disk must hold.
 */
import { MemoryDisk } from '../../src/block/memory.ts';
import type { Disk } from '../../src/block/disk.ts';
import type { Channel } from '../../src/wire/channel.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { REAL_RUNTIME, type Runtime } from '../../src/runtime.ts';
import type { SourceEngine } from '../../src/migrate/source-engine.ts';
import type { TargetEngine } from '../../src/migrate/target-engine.ts';
import { buildSourceDisks, buildSourceSession, buildTargetDisks, buildTargetSession } from '../../src/migrate/stack.ts';
import { resolveFeatures, type Algorithm, type Features } from '../../src/policy/algorithm.ts';
import type { PrefetchConfig } from '../../src/policy/prefetch.ts';
import { LocalContent } from '../../src/migrate/local-content.ts';
import type { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';
import assert from 'node:assert/strict';
import type { MigrationReport } from '../../src/migrate/report.ts';
import type { RemoteContent } from '../../src/migrate/remote-content.ts';
import { WorkloadExecutor, type ExecutorResult } from '../../src/workload/executor.ts';
import { ExpectedDisk, finalVerify } from '../../src/workload/expected.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';

export interface RigOptions {
  algorithm: Algorithm;
  size: number;
  blockSize?: number;
  bandwidthBps?: number;
  delayMs?: number;
  seed?: number;
  /** Default: the algorithm's. */
  features?: Partial<Features>;
  prefetch?: Partial<PrefetchConfig>;
  /** The target image starts with this content (an old copy: migrate-back). */
  targetInitial?: Buffer;
  /** Replica index at the target. */
  index?: ReplicaIndex;
  /** Sibling hosts' content at the target (a fleet's locator and claims). */
  remote?: RemoteContent;
  /** The VM runs the mail profile: half its writes copy existing blocks (duplicates). */
  duplicateWrites?: boolean;
  /** TargetEngine's backgroundFlushBytes (default: the engine's). */
  backgroundFlushBytes?: number;
  /** What both sides run on (default REAL_RUNTIME: the block work on this thread). */
  runtime?: Runtime;
  /** The source pre-copies until source.requestCutover(). */
  manualCutover?: boolean;
}

export async function fillImage(disk: Disk, seed: number): Promise<void> {
  const rng = new Prng(seed);
  const chunk = Buffer.alloc(1 << 20);
  for (let off = 0; off < disk.size; off += chunk.length) {
    // Every third MiB stays a hole, as unallocated parts of a real image would.
    if ((off >> 20) % 3 === 2) continue;
    rng.fill(chunk);
    await disk.write(off, chunk.subarray(0, Math.min(chunk.length, disk.size - off)));
  }
}

export function buildRig(o: RigOptions) {
  const bs = o.blockSize ?? 65536;
  const runtime = o.runtime ?? REAL_RUNTIME;
  const srcImage = new MemoryDisk(o.size);
  const features = resolveFeatures(o.algorithm, o.features);
  const { tracking, gate: srcGate } = buildSourceDisks({ runtime, image: srcImage, blockSize: bs });
  const tgtImage = new MemoryDisk(o.size);
  const [a, b] = memoryLink(runtime.clock, { bandwidthBps: o.bandwidthBps ?? 400e6, delayMs: o.delayMs ?? 2 });
  let source!: SourceEngine;
  let target: TargetEngine | undefined;
  let srcCh!: Channel;
  let tgtCh!: Channel;
  const lostErrors: Error[] = [];
  const onLoss = (e: Error | undefined, s: { engine: SourceEngine | TargetEngine }) => { if (e) { lostErrors.push(e); s.engine.abort(e.message); } };
  const { postcopy, gate: tgtGate } = buildTargetDisks({ runtime, image: tgtImage, blockSize: bs, engine: () => target });
  const quiet = log.child({ rig: o.algorithm });
  const local = new LocalContent({ image: tgtImage, imagePath: '/nonexistent/rig-target.img', blockSize: bs, content: runtime.content, preexisting: o.targetInitial !== undefined, index: o.index, remote: o.remote, log: quiet });
  const start = async () => {
    if (o.targetInitial) await tgtImage.write(0, o.targetInitial);
    ({ engine: source, channel: srcCh } = buildSourceSession({
      runtime, disks: { image: srcImage, tracking, gate: srcGate }, channel: { onDisconnect: onLoss },
      engine: { algorithm: o.algorithm, features, blockSize: bs, bandwidthBps: o.bandwidthBps ?? 400e6, log: quiet, targetHasReplicas: features.dedup && local.hasCandidates, manualCutover: o.manualCutover },
    }));
    ({ engine: target, channel: tgtCh } = buildTargetSession({
      runtime, disks: { postcopy, gate: tgtGate }, channel: { onDisconnect: onLoss },
      engine: { log: quiet, features, prefetch: o.prefetch, local: features.dedup ? local : undefined, backgroundFlushBytes: o.backgroundFlushBytes },
    }));
    srcCh.attach(a);
    tgtCh.attach(b);
  };
  const rig = {
    lostErrors, srcImage, tgtImage, srcGate, tgtGate, tracking, postcopy, blockSize: bs, local, start,
    get source() { return source; }, get target() { return target!; }, get srcCh() { return srcCh; }, get tgtCh() { return tgtCh; },
  };
  return rig;
}

/** Waits for the source's report and the target's end: verified, and the target image equal to `expected`. */
export async function expectVerifiedExact(rig: ReturnType<typeof buildRig>, run: Promise<MigrationReport>, expected: Buffer): Promise<MigrationReport> {
  const report = await run;
  await rig.target.result;
  assert.equal(report.verified, true);
  const tgt = Buffer.alloc(expected.length);
  await rig.tgtImage.read(0, tgt);
  assert.ok(tgt.equals(expected), 'target byte-exact');
  return report;
}

/** What the rig's VM (the CLI's WorkloadExecutor) did and found. */
export interface RigVm {
  result: ExecutorResult;
  /** Reads during the run that returned something other than what was last written (or the original). */
  readMismatches: number;
  /** Pages of the target image, read back in full after the migration, that differ from the expected content. */
  finalMismatches: number;
  /** The VM was moved to the target (its source disk turned it away). */
  switched: boolean;
  /** The VM completed requests at the target. */
  ioAtTarget: boolean;
}

/**
 * Runs the workload executor (the one `flimcd load` and the demo use) on the
 * source gate, moving to the target gate at cut-over; every read is checked
 * against the model of what was written over the original image.
 */
export async function startVm(rig: ReturnType<typeof buildRig>, o: { seed: number; bandwidthBps: number; duplicateWrites?: boolean; queueDepth?: number }) {
  const size = rig.srcImage.size;
  const profile = resolveProfile(o.duplicateWrites ? 'mail' : 'moderate', { linkBitsPerSecond: o.bandwidthBps, imageBytes: size, blockSize: rig.blockSize });
  // Never-written pages are checked against the source image: the workload never changes them there.
  const expected = await ExpectedDisk.create(size, o.seed, { base: rig.srcImage });
  const executor = new WorkloadExecutor({
    disk: rig.srcGate, switchTo: async () => rig.tgtGate, requests: new RequestGenerator(profile.params, o.seed), durationMs: 3600_000, expected,
    blockSize: rig.blockSize, queueDepth: o.queueDepth,
  });
  const running = executor.run();
  /** Stops the VM after the migration and checks the whole target image. */
  const stop = async (): Promise<RigVm> => {
    executor.stop();
    const result = await running;
    if (result.error) throw result.error;
    const readMismatches = expected.stats.mismatches;
    const final = await finalVerify(rig.tgtImage, expected);
    return {
      result, readMismatches, finalMismatches: final.mismatches, switched: result.switchOver !== undefined,
      ioAtTarget: result.perSecond.some((s) => s.disk === 'secondary' || s.disk === 'both'),
    };
  };
  return { executor, expected, stop };
}

export async function migrate(o: RigOptions & { vm?: boolean; queueDepth?: number; sourceInitial?: Buffer }): Promise<{ report: MigrationReport; rig: ReturnType<typeof buildRig>; vm: RigVm | undefined }> {
  const rig = buildRig(o);
  if (o.sourceInitial) await rig.srcImage.write(0, o.sourceInitial);
  else await fillImage(rig.srcImage, o.seed ?? 1);
  await rig.start();
  const vm = o.vm === false ? undefined : await startVm(rig, { seed: o.seed ?? 1, bandwidthBps: o.bandwidthBps ?? 400e6, duplicateWrites: o.duplicateWrites, queueDepth: o.queueDepth });
  try {
    const report = await rig.source.run();
    await rig.target.result;
    return { report, rig, vm: await vm?.stop() };
  } finally {
    vm?.executor.stop();
    rig.srcCh.close();
    rig.tgtCh.close();
  }
}
