import { createBLAKE3 } from 'hash-wasm';

// BLAKE3 in WebAssembly (hash-wasm): about 0.9 GB/s on one core, far above any WAN
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

/**
 * The simulator's seam (src/sim/content-model.ts): its modelled disk hands out
 * blocks that carry a small content token instead of real bytes, and this
 * model names their content without hashing. Only the simulator installs one;
 * agents never do, so real bytes are always hashed.
 */
export interface ContentModel {
  /** The block's content id, or undefined when the bytes are not a modelled block. */
  id(block: Uint8Array): Buffer | undefined;
  /** Whether a modelled block is all zero, or undefined when the bytes are not a modelled block. */
  zero(block: Uint8Array): boolean | undefined;
}

let model: ContentModel | undefined;

/** Installs (or with undefined removes) the simulator's content model for this process. */
export function setContentModel(m: ContentModel | undefined): void {
  model = m;
}

/** BLAKE3-256 of a block's bytes: the block's content id. */
export function contentId(block: Uint8Array): Buffer {
  if (model) {
    const id = model.id(block);
    if (id) return id;
  }
  return blake3(block);
}

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

/** True if every byte is zero; word-wise, much cheaper than hashing. */
export function isZero(b: Uint8Array): boolean {
  if (model) {
    const z = model.zero(b);
    if (z !== undefined) return z;
  }
  const words = b.byteOffset % 8 === 0 ? Math.floor(b.length / 8) : 0;
  if (words) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, words);
    for (let i = 0; i < words; i++) if (w[i] !== 0n) return false;
  }
  for (let i = words * 8; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Content id, recognising zero blocks without hashing. */
export function blockId(block: Uint8Array): Buffer {
  return isZero(block) ? zeroContentId(block.length) : contentId(block);
}

/**
 * Merkle root over the content ids of all blocks, in block order: a two-level
 * tree with fan-out 256 (leaf groups hashed, then the group hashes). Both
 * sides compute it the same way; equal roots mean equal images.
 */
export function merkleRoot(ids: Buffer[]): Buffer {
  const FAN = 256;
  const groups: Buffer[] = [];
  for (let i = 0; i < ids.length; i += FAN) groups.push(blake3(Buffer.concat(ids.slice(i, i + FAN))));
  return blake3(Buffer.concat([Buffer.from(`flimcd-merkle-v1:${ids.length}:`), ...groups]));
}
