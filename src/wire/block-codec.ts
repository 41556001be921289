import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { ProtocolError } from '../errors.ts';

// zstd-napi's low-level binding: compress into a caller-sized buffer and
// decompress into a fixed-size one, so a hostile frame cannot make us allocate.
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;

/** Compressed output must save at least 1/32 of the block, else the block travels raw. */
const MIN_SAVING_SHIFT = 5;

export interface CompressResult {
  /** What goes on the wire. */
  payload: Buffer;
  compressed: boolean;
  /** Time spent compressing (ms), for the level policy. */
  ms: number;
}

/**
 * How a runtime compresses blocks. Agents use ZSTD_CODEC: zstd runs on every
 * block. The simulator (src/sim/content-model.ts) hands its own to the code
 * it runs: blocks of its modelled disk carry a content token and their
 * modelled compressed size, so the sender puts a payload of exactly that size
 * on the link without running zstd.
 */
export interface CodecModel {
  /** The modelled result, or undefined when zstd is to compress the bytes. */
  compress(data: Buffer, room: number): { payload: Buffer; compressed: boolean } | undefined;
  /** The block a modelled payload stands for, or undefined when zstd is to decompress it. */
  decompress(payload: Uint8Array, length: number): Buffer | undefined;
}

/** Real bytes: nothing is modelled, zstd does all the work. */
export const ZSTD_CODEC: CodecModel = {
  compress: () => undefined,
  decompress: () => undefined,
};

/**
 * Per-block zstd compression for DATA frames. Each frame is a complete zstd
 * frame, so it decodes on its own: retransmission after a reconnect needs no
 * shared stream state.
 */
export class BlockCompressor {
  private readonly cctx = new zstd.CCtx();
  level: number;
  readonly stats = { rawBytes: 0, wireBytes: 0, compressedBlocks: 0, rawBlocks: 0, ms: 0 };

  constructor(level = 3, private readonly model: CodecModel = ZSTD_CODEC) {
    this.level = level;
  }

  compress(data: Buffer): CompressResult {
    const t = performance.now();
    // Room for a result worth sending; zstd fails with "dstSize too small" otherwise.
    const room = data.length - (data.length >> MIN_SAVING_SHIFT);
    const modelled = this.model.compress(data, room);
    if (modelled) return this.account(data.length, modelled.payload, modelled.compressed, 0);
    const out = Buffer.allocUnsafe(room);
    let n: number;
    try {
      n = this.cctx.compress(out, data, this.level);
    } catch {
      n = -1; // did not fit: incompressible
    }
    const ms = performance.now() - t;
    return n < 0 ? this.account(data.length, data, false, ms) : this.account(data.length, out.subarray(0, n), true, ms);
  }

  /** Counts a block compressed elsewhere (a worker thread) as if compressed here: the level policy reads these stats. */
  account(rawBytes: number, payload: Buffer, compressed: boolean, ms: number): CompressResult {
    this.stats.ms += ms;
    this.stats.rawBytes += rawBytes;
    this.stats.wireBytes += payload.length;
    if (compressed) this.stats.compressedBlocks++;
    else this.stats.rawBlocks++;
    return { payload, compressed, ms };
  }
}

/** Decompresses one DATA frame into exactly `length` bytes; anything else is a protocol error. */
export class BlockDecompressor {
  constructor(private readonly model: CodecModel = ZSTD_CODEC) {}

  /** Made at the first compressed block: a sender without compression never needs one. */
  private dctxOnce: InstanceType<typeof zstd.DCtx> | undefined;

  private get dctx(): InstanceType<typeof zstd.DCtx> {
    return (this.dctxOnce ??= new zstd.DCtx());
  }

  /** The block a DATA payload carries: decompressed when it travelled compressed, else the payload itself, which must be `length` bytes. */
  decodeBlock(payload: Buffer, compressed: boolean, length: number): Buffer {
    if (compressed) return this.decompress(payload, length);
    if (payload.length !== length) throw new ProtocolError(`uncompressed block has ${payload.length} bytes, expected ${length}`);
    return payload;
  }

  decompress(payload: Uint8Array, length: number): Buffer {
    const modelled = this.model.decompress(payload, length);
    if (modelled) return modelled;
    let size: number | null;
    try {
      size = zstd.getFrameContentSize(payload);
    } catch (e) {
      throw new ProtocolError(`compressed block has no zstd frame header: ${(e as Error).message}`);
    }
    if (size !== null && size !== length) throw new ProtocolError(`compressed block declares ${size} bytes, expected ${length}`);
    const out = Buffer.allocUnsafe(length);
    let n: number;
    try {
      n = this.dctx.decompress(out, payload);
    } catch (e) {
      throw new ProtocolError(`compressed block does not decode: ${(e as Error).message}`);
    }
    if (n !== length) throw new ProtocolError(`compressed block decoded to ${n} bytes, expected ${length}`);
    return out;
  }
}
