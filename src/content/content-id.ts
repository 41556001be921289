import { createBLAKE3 } from 'hash-wasm';

// BLAKE3 in WebAssembly (hash-wasm): about 0.9 GB/s here, far above any WAN
// link, and it installs from the npm registry alone on every platform (the
// native @napi-rs/blake-hash needs per-platform packages this registry lacks,
// which breaks `npm ci`). One hasher, reused: hashing is synchronous after init.
const hasher = await createBLAKE3();

/** BLAKE3-256 of some bytes. */
export function blake3(data: Uint8Array): Buffer {
  hasher.init();
  hasher.update(data);
  const out = hasher.digest('binary');
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** BLAKE3-256 of a block's bytes: the block's content id. */
export function contentId(block: Uint8Array): Buffer {
  return blake3(block);
}

/** True if every byte is zero; word-wise, much cheaper than hashing. */
export function isZero(b: Uint8Array): boolean {
  const words = b.byteOffset % 8 === 0 ? Math.floor(b.length / 8) : 0;
  if (words) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, words);
    for (let i = 0; i < words; i++) if (w[i] !== 0n) return false;
  }
  for (let i = words * 8; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// A cache of pure values: the id of n zero bytes never changes.
const zeroIds = new Map<number, Buffer>();

/** Content id of an all-zero block of this length (computed once per length). */
export function zeroContentId(length: number): Buffer {
  let id = zeroIds.get(length);
  if (!id) {
    id = contentId(new Uint8Array(length));
    zeroIds.set(length, id);
  }
  return id;
}

/**
 * How a runtime names a block's content. Agents use REAL_CONTENT_MODEL: the
 * bytes are hashed. The simulator (src/sim/content-model.ts) hands its own
 * to the code it runs: its modelled blocks carry a small token instead of
 * real bytes, and the model names their content from the token.
 */
export interface ContentModel {
  /** The block's content id. */
  id(block: Uint8Array): Buffer;
  /** Whether the block is all zero. */
  isZero(block: Uint8Array): boolean;
}

/** Real bytes: BLAKE3 ids and a byte-wise zero test. */
export const REAL_CONTENT_MODEL: ContentModel = { id: contentId, isZero };

/** A block's content id under `model`, recognising zero blocks without hashing. */
export function blockId(model: ContentModel, block: Uint8Array): Buffer {
  return model.isZero(block) ? zeroContentId(block.length) : model.id(block);
}
