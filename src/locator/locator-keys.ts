/**
 * How the datacenter-wide content locator lays its entries out in Redis
 * Cluster (src/locator/redis-locator.ts). Compact on purpose: one small
 * listpack-encoded hash per bucket of ids, not one key per id (a Redis key
 * costs about 60 bytes on its own; docs/design.md has the measured numbers).
 *
 *   key    fl:<idFormat>:<blockSizeKiB>:{<id byte 0, hex>}<the id's first B bits, hex>
 *   field  id bytes floor(B/8)..12 (binary; with the key a 96-bit match)
 *   value  host number (u16) | image number on that host (u32) | block number (u40)
 *
 * B, the bucket bits, is fixed per cluster by the first host that connects
 * (key fl:meta:bucket-bits) so every host agrees; about log2(entries / 64)
 * keeps each bucket a listpack (Redis converts a hash to a hash table past
 * hash-max-listpack-entries, 128 by default, and then an entry costs 3x).
 * The {hashtag} is the id's first byte: every bucket lands in one of 256
 * slots, so an OFFER batch of 512 ids touches at most 256 slots and the
 * client sends one pipeline per master. The id format (e.g. `blake3`) is in
 * the key, so ids of another format never match. Ids are hints: 96 bits find
 * a location; whoever uses it re-hashes the bytes before trusting them.
 */
import { UsageError } from '../errors.ts';

/** Id bytes the locator keys on (the first bits in the key, the rest in the field). */
export const LOCATOR_ID_BYTES = 12;
/** Bucket bits: 8 (256 buckets, for up to ~16k entries) to 24 (~1e9 entries). */
export const MIN_BUCKET_BITS = 8;
export const MAX_BUCKET_BITS = 24;
export const DEFAULT_BUCKET_BITS = 16;
/** Redis key holding the cluster's bucket bits. */
export const BUCKET_BITS_KEY = 'fl:meta:bucket-bits';
export const LOCATOR_VALUE_BYTES = 11;
/** Redis key of the host table (address → host number) and its counter. */
export const HOSTS_KEY = 'fl:hosts';
export const HOST_COUNTER_KEY = 'fl:hosts:next';
export const MAX_HOSTS = 0xffff;
const MAX_IMAGE_NO = 0xffffffff;
const MAX_BLOCK_NO = 2 ** 40 - 1;

/** Where a block's content lies: a host (by number), an image there (its replica index number), a block. */
export interface LocatorEntry {
  host: number;
  image: number;
  block: number;
}

/** An id format name usable in keys: lower-case letters and digits. */
export function checkIdFormat(f: string): string {
  if (!/^[a-z0-9-]{1,16}$/.test(f)) throw new UsageError(`content id format ${JSON.stringify(f)}: use 1-16 lower-case letters, digits or '-'`);
  return f;
}

export function checkBucketBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < MIN_BUCKET_BITS || bits > MAX_BUCKET_BITS) throw new RangeError(`bucket bits ${bits}: must be ${MIN_BUCKET_BITS}-${MAX_BUCKET_BITS}`);
  return bits;
}

/** The bucket key of an id for a block size, id format and bucket bits. */
export function bucketKey(idFormat: string, blockSize: number, id: Uint8Array, bits = DEFAULT_BUCKET_BITS): string {
  if (id.length < LOCATOR_ID_BYTES) throw new RangeError(`content id of ${id.length} bytes; the locator needs ${LOCATOR_ID_BYTES}`);
  const top = ((id[0]! << 16) | (id[1]! << 8) | id[2]!) >>> (24 - bits);
  return `fl:${idFormat}:${blockSize / 1024}:{${id[0]!.toString(16).padStart(2, '0')}}${top.toString(16)}`;
}

/** The field of an id inside its bucket. */
export function bucketField(id: Uint8Array, bits = DEFAULT_BUCKET_BITS): Buffer {
  const from = Math.floor(bits / 8);
  return Buffer.from(id.buffer, id.byteOffset + from, LOCATOR_ID_BYTES - from);
}

export function packEntry(e: LocatorEntry): Buffer {
  if (!Number.isInteger(e.host) || e.host < 0 || e.host > MAX_HOSTS) throw new RangeError(`host number ${e.host}`);
  if (!Number.isInteger(e.image) || e.image < 0 || e.image > MAX_IMAGE_NO) throw new RangeError(`image number ${e.image}`);
  if (!Number.isInteger(e.block) || e.block < 0 || e.block > MAX_BLOCK_NO) throw new RangeError(`block number ${e.block}`);
  const v = Buffer.allocUnsafe(LOCATOR_VALUE_BYTES);
  v.writeUInt16BE(e.host, 0);
  v.writeUInt32BE(e.image, 2);
  v.writeUIntBE(e.block, 6, 5);
  return v;
}

/** An entry, or undefined for a value this version does not understand (treated as absent). */
export function unpackEntry(v: Buffer | null | undefined): LocatorEntry | undefined {
  if (!v || v.length !== LOCATOR_VALUE_BYTES) return undefined;
  return { host: v.readUInt16BE(0), image: v.readUInt32BE(2), block: v.readUIntBE(6, 5) };
}
