/**
 * Content identity without content: how the simulator moves 20 GiB through
 * the real engines in seconds.
 *
 * A modelled block is a buffer of the block's real length (so every frame,
 * window and queue carries exactly the bytes the real wire would) whose first
 * TOKEN_BYTES hold a token: magic, kind, a 52-bit content id and the block's
 * modelled zstd size. The rest of the buffer is never read. The models of the
 * simulator's runtime (modelledRuntime; src/runtime.ts) let the engines' own
 * code name the content
 * (content id = f(token id); all-zero = id 0) and "compress" it (a payload of
 * the modelled size, token first) without hashing or running zstd. Equal ids
 * are equal content, so dedup, REF, OFFER and the final Merkle root work
 * unchanged. The frame checksum (frame.ts) covers each frame's header, its
 * first CHECKED_PAYLOAD_BYTES and its length: all a modelled frame carries.
 * Block buffers (block-buffer.ts, the codec's output, the link's frames)
 * come from overlap arenas: only the bytes above are private to a buffer.
 *
 * Writes by the modelled VM carry a write token (kind WRITE) holding the
 * workload's content tag; the disk derives the new block ids from it.
 *
 * The models reach only the code a simulation hands its runtime to: real
 * agents in the same process keep hashing, compressing and checksumming every
 * real byte. Bytes that carry no token are handled as real ones here too.
 */
import { contentId, DEFAULT_CONTENT_ID_FORMAT, isZero, zeroContentId, type ContentModel } from '../content/content-id.ts';
import type { CodecModel } from '../wire/block-codec.ts';
import type { FrameChecksum } from '../wire/frame.ts';
import { crc32 } from 'node:zlib';
import { OverlapArena } from './overlap-arena.ts';
import type { Clock } from '../util/clock.ts';
import type { Runtime } from '../runtime.ts';
import { inThreadBlockWork } from '../workers/block-work.ts';

export const TOKEN_BYTES = 24;
const MAGIC = 0x4d495346; // "FSIM" little-endian
/** The token's last word: with MAGIC, 64 bits no real bytes (nor a modelled content id) carry by chance. */
const MAGIC2 = 0x4b4f4c42; // "BLOK" little-endian
export const Kind = { BLOCK: 1, WRITE: 2 } as const;

export interface Token {
  kind: number;
  /** Block: content id (0 = all zero). Write: the workload's content tag. */
  id: number;
  /** Block: modelled zstd size, 0 = incompressible. */
  zsize: number;
}

export function stamp(into: Uint8Array, at: number, kind: number, id: number, zsize: number): void {
  if (at + TOKEN_BYTES > into.length) return;
  const v = new DataView(into.buffer, into.byteOffset + at, TOKEN_BYTES);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, kind, true);
  v.setFloat64(8, id, true);
  v.setUint32(16, zsize, true);
  v.setUint32(20, MAGIC2, true);
}

export function readToken(b: Uint8Array, at = 0): Token | undefined {
  if (at + TOKEN_BYTES > b.length) return undefined;
  const v = new DataView(b.buffer, b.byteOffset + at, TOKEN_BYTES);
  if (v.getUint32(0, true) !== MAGIC || v.getUint32(20, true) !== MAGIC2) return undefined;
  return { kind: v.getUint32(4, true), id: v.getFloat64(8, true), zsize: v.getUint32(16, true) };
}

/**
 * Bytes of `part` a modelled link must carry: all of them, except for a
 * modelled block (or a modelled compressed payload), whose bytes past its
 * token are filler nobody reads. The receiver still gets the part's full
 * length; the filler's bytes are left as they are.
 */
export function carriedBytes(part: Uint8Array): number {
  if (part.length < 4 * TOKEN_BYTES) return part.length;
  const t = readToken(part);
  return t && t.kind === Kind.BLOCK ? TOKEN_BYTES : part.length;
}

/** 32-bit mix (murmur3 finaliser). */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A 52-bit id from a list of numbers (each up to 2^53): two independent
 * 32-bit hash lanes, 20 + 32 bits kept. Never 0 (0 is the zero block).
 */
export function mixId(...xs: number[]): number {
  let a = 0x9e3779b9;
  let b = 0x7f4a7c15;
  for (const x of xs) {
    const lo = x >>> 0;
    const hi = Math.floor(x / 2 ** 32) >>> 0;
    a = fmix(a ^ lo) ^ fmix(hi + 0x632be5ab);
    b = fmix(b ^ Math.imul(lo, 0x27d4eb2d)) ^ fmix(hi ^ 0x165667b1);
  }
  const id = (a & 0xfffff) * 2 ** 32 + (b >>> 0);
  return id === 0 ? 1 : id;
}

// A fixed tail: these ids never equal a real digest of interest.
const ID_TAIL = Buffer.alloc(20);
ID_TAIL.write('flimcd-sim-content-id', 0, 'latin1');

function idBytes(id: number): Buffer {
  const out = Buffer.allocUnsafe(32);
  out.writeUInt32LE(MAGIC, 0);
  out.writeDoubleLE(id, 4);
  ID_TAIL.copy(out, 12);
  return out;
}

/** Modelled blocks are named by their token; other bytes are hashed. */
const contentModel: ContentModel = {
  format: DEFAULT_CONTENT_ID_FORMAT,
  id(block) {
    const t = readToken(block);
    if (!t || t.kind !== Kind.BLOCK) return contentId(block);
    return t.id === 0 ? zeroContentId(block.length) : idBytes(t.id);
  },
  isZero(block) {
    const t = readToken(block);
    if (!t || t.kind !== Kind.BLOCK) return isZero(block);
    return t.id === 0;
  },
};

/**
 * Payload bytes the simulated frame checksum covers: every message header and
 * a block's token lie within them (a DATA message's header is under 32 bytes,
 * a token 24). What lies beyond is a modelled block's unread filler.
 */
export const CHECKED_PAYLOAD_BYTES = 128;

const frameChecksum: FrameChecksum = {
  parts(header, parts) {
    let c = crc32(header);
    let left = CHECKED_PAYLOAD_BYTES;
    let len = 0;
    for (const p of parts) {
      len += p.length;
      if (left > 0) {
        const k = Math.min(left, p.length);
        c = crc32(k === p.length ? p : p.subarray(0, k), c);
        left -= k;
      }
    }
    return (c ^ len) >>> 0;
  },
  whole(header, payload) {
    const c = crc32(payload.length <= CHECKED_PAYLOAD_BYTES ? payload : payload.subarray(0, CHECKED_PAYLOAD_BYTES), crc32(header));
    return (c ^ payload.length) >>> 0;
  },
};

/** A modelled block "compresses" to a payload of its modelled size, token first, and back. */
function codecModel(decompressed: OverlapArena): CodecModel {
  return {
    compress(data, room) {
      const t = readToken(data);
      if (!t || t.kind !== Kind.BLOCK) return undefined;
      if (t.zsize === 0 || t.zsize > room) return { payload: data, compressed: false };
      return { payload: data.subarray(0, Math.max(TOKEN_BYTES, t.zsize)), compressed: true };
    },
    decompress(payload, length) {
      const t = readToken(payload);
      if (!t || t.kind !== Kind.BLOCK) return undefined;
      // Only the token is ever read from a modelled block: its filler may overlap others'.
      const out = decompressed.take(length, TOKEN_BYTES);
      stamp(out, 0, Kind.BLOCK, t.id, t.zsize);
      return out;
    },
  };
}

/**
 * The runtime of one simulation: `clock` (its virtual clock) and the models
 * above. Each call has arenas of its own, so simulations never share buffers.
 */
export function modelledRuntime(clock: Clock): Runtime {
  const decompressed = new OverlapArena(1 << 21);
  // Blocks the engines read to send: private bytes cover the token and whatever
  // of a frame's payload the frame checksum reads, since a payload may be a view of such a block.
  const engineBlocks = new OverlapArena(1 << 21);
  const codec = codecModel(decompressed);
  return {
    clock,
    content: contentModel,
    codec,
    frameChecksum,
    allocBlock: (length) => engineBlocks.take(length, CHECKED_PAYLOAD_BYTES),
    // The models' work is cheap and on this thread, as the engines' time is virtual.
    work: inThreadBlockWork(contentModel, codec),
    // The process's CPU is not the modelled agents' and would make reports (VERIFY's size) vary run to run.
    cpuSeconds: () => 0,
  };
}
