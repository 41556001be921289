/**
 * What the migration code takes from its surroundings, handed in as one value
 * instead of process-wide switches: so real agents and the simulator (which
 * models time, content, compression, frame checksums and block buffers) can
 * run side by side in one process, each on its own runtime.
 *
 * Each layer declares the seam it needs next to the code that uses it; this
 * composes them. Agents run on realRuntime(); the simulator builds its own
 * (src/sim/content-model.ts modelledRuntime).
 */
import { realClock, type Clock } from './util/clock.ts';
import { DEFAULT_CONTENT_ID_FORMAT, realContentModel, type ContentIdFormat, type ContentModel } from './content/content-id.ts';
import { ZSTD_CODEC, type CodecModel } from './wire/block-codec.ts';
import { CRC32_FRAME_CHECKSUM, type FrameChecksum } from './wire/frame.ts';
import { allocUnsafeBlock, type BlockAllocator } from './block/block-buffer.ts';
import { inThreadBlockWork, type BlockWork } from './workers/block-work.ts';
import { WorkerPool } from './workers/worker-pool.ts';

export interface Runtime {
  clock: Clock;
  /** Content ids and the zero test. */
  content: ContentModel;
  /** Block compression for DATA frames. */
  codec: CodecModel;
  /** The link's frame checksum. */
  frameChecksum: FrameChecksum;
  /** Buffers for blocks on their way to the link or the image. */
  allocBlock: BlockAllocator;
  /** Where content ids and zstd of blocks on the link run: a pool of worker threads, or this thread. */
  work: BlockWork;
  /** CPU seconds this process has used so far, every thread (the pool's workers) included. */
  cpuSeconds: () => number;
}

/** process.cpuUsage() covers the whole process (getrusage RUSAGE_SELF): worker threads are in it. */
export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export interface RealRuntimeOptions {
  clock?: Clock;
  /** Content id format (default SHA-256; see src/content/content-id.ts). */
  contentIds?: ContentIdFormat;
  /** Worker threads for ids and zstd; 0 (the default) runs them on this thread. Close `work` when done. */
  workers?: number;
}

/** Real bytes on the given clock (default the wall clock): what agents run on. */
export function realRuntime(o: RealRuntimeOptions = {}): Runtime {
  const content = realContentModel(o.contentIds ?? DEFAULT_CONTENT_ID_FORMAT);
  const work = o.workers && o.workers > 0 ? new WorkerPool({ size: o.workers, format: content.format }) : inThreadBlockWork(content);
  return { clock: o.clock ?? realClock, content, codec: ZSTD_CODEC, frameChecksum: CRC32_FRAME_CHECKSUM, allocBlock: allocUnsafeBlock, work, cpuSeconds: processCpuSeconds };
}

/** The wall clock and real bytes, the work on this thread: the default where no runtime is handed in. */
export const REAL_RUNTIME: Runtime = Object.freeze(realRuntime());
