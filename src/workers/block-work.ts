/**
 * The CPU-heavy work on blocks: content ids and zstd. Agents run it on a pool
 * of worker threads (worker-pool.ts) so both cores work and the event loop
 * stays free for the link and the VM's I/O; the simulator and unit tests run it
 * on this thread (inThreadBlockWork), through the runtime's content and codec
 * models. The Runtime (src/runtime.ts) carries one.
 */
import { BlockCompressor, BlockDecompressor, ZSTD_CODEC, type CodecModel } from '../wire/block-codec.ts';
import type { ContentModel } from '../content/content-id.ts';

export interface EncodeRequest {
  /** One block's bytes (not all zero: zero blocks need neither). */
  block: Buffer;
  /** Compute the block's content id. */
  hash: boolean;
  /** zstd level; 0 leaves the block uncompressed. */
  level: number;
}

export interface Encoded {
  /**
   * The block's bytes. A pool takes a caller's buffer that owns its memory
   * (transferred to the worker and back, no copy): use this one afterwards,
   * never the buffer handed in. Other buffers are copied once.
   */
  block: Buffer;
  /** Content id, when asked for. */
  id: Buffer | undefined;
  /** zstd frame of the block when compression was asked for and saves at least 1/32; else undefined (the block travels raw). */
  payload: Buffer | undefined;
  /** Time spent compressing (ms), for the level policy. */
  ms: number;
}

export interface Decoded {
  block: Buffer;
  id: Buffer | undefined;
}

export interface BlockWork {
  /** Worker threads doing the work (0: this thread). */
  readonly threads: number;
  /** Content id and/or zstd of one block. Waits while the pool's queue is full (back-pressure). */
  encode(r: EncodeRequest): Promise<Encoded>;
  /** Decompresses one zstd frame into exactly `length` bytes (ProtocolError otherwise), and hashes it when asked. */
  decode(payload: Buffer, length: number, hash: boolean): Promise<Decoded>;
  /** Seconds the workers' event loops were busy so far (0 on this thread: the work counts as the main thread's). */
  busySeconds(): number;
  /** Stops the workers (work still queued fails). */
  close(): Promise<void>;
}

/** The work on this thread, through the runtime's models (the simulator's modelled content and compression). */
export function inThreadBlockWork(content: ContentModel, codec: CodecModel = ZSTD_CODEC): BlockWork {
  const compressor = new BlockCompressor(1, codec);
  const decompressor = new BlockDecompressor(codec);
  return {
    threads: 0,
    encode(r) {
      try {
        const id = r.hash ? content.id(r.block) : undefined;
        if (r.level <= 0) return Promise.resolve({ block: r.block, id, payload: undefined, ms: 0 });
        compressor.level = r.level;
        const c = compressor.compress(r.block);
        return Promise.resolve({ block: r.block, id, payload: c.compressed ? c.payload : undefined, ms: c.ms });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    decode(payload, length, hash) {
      try {
        const block = decompressor.decompress(payload, length);
        return Promise.resolve({ block, id: hash ? content.id(block) : undefined });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    busySeconds: () => 0,
    close: () => Promise.resolve(),
  };
}
