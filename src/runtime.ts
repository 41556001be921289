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
import { REAL_CONTENT_MODEL, type ContentModel } from './content/content-id.ts';
import { ZSTD_CODEC, type CodecModel } from './wire/block-codec.ts';
import { CRC32_FRAME_CHECKSUM, type FrameChecksum } from './wire/frame.ts';
import { allocUnsafeBlock, type BlockAllocator } from './block/block-buffer.ts';

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
}

/** Real bytes on the given clock (default the wall clock): what agents run on. */
export function realRuntime(clock: Clock = realClock): Runtime {
  return { clock, content: REAL_CONTENT_MODEL, codec: ZSTD_CODEC, frameChecksum: CRC32_FRAME_CHECKSUM, allocBlock: allocUnsafeBlock };
}

/** The agents' runtime: the wall clock and real bytes. */
export const REAL_RUNTIME: Runtime = Object.freeze(realRuntime());
