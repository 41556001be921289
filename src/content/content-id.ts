import { createHash } from 'node:crypto';
import { createBLAKE3 } from 'hash-wasm';

/**
 * How content ids are computed: the name travels in the handshake (HELLO,
 * WELCOME) and is recorded in the replica index, so agents or an index of
 * another format are refused instead of silently never matching.
 *
 * - `sha256`: node:crypto's SHA-256 (OpenSSL, SHA-NI where the CPU has it):
 *   about 1.6 GB/s on one core here on 64 KiB blocks, against hash-wasm's BLAKE3 at
 *   0.7-0.9 GB/s (`npm run bench:cpu` measures both). Nothing to install.
 * - `blake3`: hash-wasm's BLAKE3 in WebAssembly, what agents before the format
 *   was named used (a HELLO or WELCOME without `contentIds` means `blake3`).
 *   It installs from the npm registry alone; a native BLAKE3 (@napi-rs/blake-hash)
 *   needs per-platform packages that break `npm ci`.
 */
export const CONTENT_ID_FORMATS = ['sha256', 'blake3'] as const;
export type ContentIdFormat = (typeof CONTENT_ID_FORMATS)[number];
/** The default, chosen by measured speed (see above). */
export const DEFAULT_CONTENT_ID_FORMAT: ContentIdFormat = 'sha256';
/** What a peer or index that names no format uses: the only format before it was named. */
export const UNNAMED_CONTENT_ID_FORMAT: ContentIdFormat = 'blake3';

/** How operators read a format's name in messages. */
export function contentIdFormatName(f: ContentIdFormat): string {
  return f === 'sha256' ? 'SHA-256' : 'BLAKE3';
}

export function isContentIdFormat(s: unknown): s is ContentIdFormat {
  return typeof s === 'string' && (CONTENT_ID_FORMATS as readonly string[]).includes(s);
}

// One BLAKE3 hasher per thread, reused: hashing is synchronous after init.
const blake3Hasher = await createBLAKE3();

/** BLAKE3-256 of some bytes. */
export function blake3(data: Uint8Array): Buffer {
  blake3Hasher.init();
  blake3Hasher.update(data);
  const out = blake3Hasher.digest('binary');
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** SHA-256 of some bytes. */
export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The 32-byte hash a format names content with. */
export function hashOf(format: ContentIdFormat): (data: Uint8Array) => Buffer {
  return format === 'sha256' ? sha256 : blake3;
}

/** A block's content id in the default format. */
export function contentId(block: Uint8Array): Buffer {
  return sha256(block);
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

// A cache of pure values: the id of n zero bytes in a format never changes.
const zeroIds = new Map<string, Buffer>();

/** Content id of an all-zero block of this length (computed once per length and format). */
export function zeroContentId(length: number, format: ContentIdFormat = DEFAULT_CONTENT_ID_FORMAT): Buffer {
  const key = `${format}:${length}`;
  let id = zeroIds.get(key);
  if (!id) {
    id = hashOf(format)(new Uint8Array(length));
    zeroIds.set(key, id);
  }
  return id;
}

/**
 * How a runtime names a block's content. Agents use realContentModel(format):
 * the bytes are hashed. The simulator (src/sim/content-model.ts) hands its own
 * to the code it runs: its modelled blocks carry a small token instead of
 * real bytes, and the model names their content from the token.
 */
export interface ContentModel {
  /** The format of the ids `id` returns (the Merkle root is hashed with it too). */
  readonly format: ContentIdFormat;
  /** The block's content id. */
  id(block: Uint8Array): Buffer;
  /** Whether the block is all zero. */
  isZero(block: Uint8Array): boolean;
}

/** Real bytes hashed in `format`, and a word-wise zero test. */
export function realContentModel(format: ContentIdFormat): ContentModel {
  return Object.freeze({ format, id: hashOf(format), isZero });
}

/** Real bytes in the default format. */
export const REAL_CONTENT_MODEL: ContentModel = realContentModel(DEFAULT_CONTENT_ID_FORMAT);

/** A block's content id under `model`, recognising zero blocks without hashing. */
export function blockId(model: ContentModel, block: Uint8Array): Buffer {
  return model.isZero(block) ? zeroContentId(block.length, model.format) : model.id(block);
}
