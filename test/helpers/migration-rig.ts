/**
 * An in-process migration: source and target engines over a memory link, each
 * side's VM-facing disk exposed, and a small VM that writes and reads through
 * every phase, switching to the target when the source turns it away. The VM
 * keeps a byte-exact model of what the disk must hold.
 */
import { MemoryDisk } from '../../src/block/memory.ts';
import type { Disk } from '../../src/block/disk.ts';
import type { Channel } from '../../src/wire/channel.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { REAL_RUNTIME } from '../../src/runtime.ts';
import type { SourceEngine } from '../../src/migrate/source-engine.ts';
import type { TargetEngine } from '../../src/migrate/target-engine.ts';
import { buildSourceDisks, buildSourceSession, buildTargetDisks, buildTargetSession } from '../../src/migrate/stack.ts';
import { resolveFeatures, type Algorithm, type Features } from '../../src/policy/algorithm.ts';
import type { PrefetchConfig } from '../../src/policy/prefetch.ts';
import { LocalContent } from '../../src/migrate/local-content.ts';
import type { ReplicaIndex } from '../../src/index/replica-index.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';
import type { MigrationReport } from '../../src/migrate/report.ts';
import { FlimcdError } from '../../src/errors.ts';
import { NbdErrno } from '../../src/nbd/errno.ts';

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
  /** Share of VM writes that copy an existing 64 KiB block elsewhere (mail-like duplicates). */
  duplicateWrites?: number;
  /** TargetEngine's backgroundFlushBytes (default: the engine's). */
  backgroundFlushBytes?: number;
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
  const runtime = REAL_RUNTIME;
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
  const local = new LocalContent({ image: tgtImage, imagePath: '/nonexistent/rig-target.img', blockSize: bs, content: runtime.content, preexisting: o.targetInitial !== undefined, index: o.index, log: quiet });
  const start = async () => {
    if (o.targetInitial) await tgtImage.write(0, o.targetInitial);
    ({ engine: source, channel: srcCh } = buildSourceSession({
      runtime, disks: { image: srcImage, tracking, gate: srcGate }, channel: { onDisconnect: onLoss },
      engine: { algorithm: o.algorithm, features, blockSize: bs, bandwidthBps: o.bandwidthBps ?? 400e6, log: quiet, targetHasReplicas: features.dedup && local.hasCandidates },
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

/** A VM doing random reads and writes, switching to the target on ESHUTDOWN, checking every read. */
export class TestVm {
  readonly model: Buffer;
  private disk: Disk;
  private stopped = false;
  switchedAt: number | undefined;
  reads = 0;
  writes = 0;
  targetWrites = 0;
  targetReads = 0;
  duplicates = 0;
  readonly mismatches: string[] = [];

  constructor(private readonly source: Disk, private readonly target: Disk, initial: Buffer, private readonly seed: number, private readonly duplicateWrites = 0) {
    this.model = Buffer.from(initial);
    this.disk = source;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs `workers` concurrent request loops on disjoint address ranges until stop(). */
  async run(workers = 4, thinkMs = 1): Promise<void> {
    const span = Math.floor(this.model.length / workers / 4096) * 4096;
    await Promise.all(Array.from({ length: workers }, (_, w) => this.loop(w * span, span, new Prng(this.seed * 100 + w), thinkMs)));
  }

  private async loop(base: number, span: number, rng: Prng, thinkMs: number): Promise<void> {
    while (!this.stopped) {
      const len = [512, 4096, 65536, 100000][rng.int(4)]!;
      const off = base + Math.min(span - len, rng.int(Math.max(1, span - len)));
      const write = rng.next() < 0.4;
      if (write && this.duplicateWrites && rng.next() < this.duplicateWrites) {
        // Copy an existing aligned 64 KiB block over another one inside this worker's range.
        const blocks = Math.floor(span / 65536);
        const from = Math.floor(rng.int(Math.floor(this.model.length / 65536))) * 65536;
        const to = base + rng.int(blocks) * 65536;
        const data = Buffer.from(this.model.subarray(from, from + 65536));
        await this.io((d) => d.write(to, data));
        data.copy(this.model, to);
        this.writes++;
        this.duplicates++;
      } else if (write) {
        const data = Buffer.allocUnsafe(len);
        rng.fill(data);
        await this.io((d) => d.write(off, data));
        data.copy(this.model, off);
        this.writes++;
        if (this.disk === this.target) this.targetWrites++;
      } else {
        const got = Buffer.alloc(len);
        await this.io((d) => d.read(off, got));
        this.reads++;
        if (this.disk === this.target) this.targetReads++;
        if (!got.equals(this.model.subarray(off, off + len))) {
          let i = 0;
          while (got[i] === this.model[off + i]) i++;
          this.mismatches.push(`read ${off}+${len} on ${this.disk === this.target ? 'target' : 'source'} differs at byte ${off + i}`);
        }
      }
      if (thinkMs) await new Promise((r) => setTimeout(r, thinkMs));
    }
  }

  private async io(op: (d: Disk) => Promise<void>): Promise<void> {
    for (;;) {
      const d = this.disk;
      try {
        return await op(d);
      } catch (e) {
        if (d === this.source && e instanceof FlimcdError && e.nbdErrno === NbdErrno.ESHUTDOWN) {
          if (this.disk === this.source) {
            this.disk = this.target;
            this.switchedAt = performance.now();
          }
          continue;
        }
        throw e;
      }
    }
  }
}

export async function migrate(o: RigOptions & { vm?: boolean; workers?: number; sourceInitial?: Buffer }): Promise<{ report: MigrationReport; rig: ReturnType<typeof buildRig>; vm: TestVm | undefined }> {
  const rig = buildRig(o);
  if (o.sourceInitial) await rig.srcImage.write(0, o.sourceInitial);
  else await fillImage(rig.srcImage, o.seed ?? 1);
  await rig.start();
  const initial = Buffer.alloc(o.size);
  await rig.srcImage.read(0, initial);
  const vm = o.vm === false ? undefined : new TestVm(rig.srcGate, rig.tgtGate, initial, o.seed ?? 1, o.duplicateWrites);
  const vmRun = vm?.run(o.workers ?? 4);
  const report = await rig.source.run();
  await rig.target.result;
  vm?.stop();
  await vmRun;
  rig.srcCh.close();
  rig.tgtCh.close();
  return { report, rig, vm };
}
