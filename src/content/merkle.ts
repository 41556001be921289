import { DEFAULT_CONTENT_ID_FORMAT, hashOf, type ContentIdFormat } from './content-id.ts';

/** Content ids per leaf group of the Merkle tree. */
const FAN = 256;
const ID_BYTES = 32;

/**
 * Merkle root over the content ids of all blocks, in block order: a two-level
 * tree with fan-out 256 (leaf groups hashed, then the group hashes), hashed in
 * the ids' own format (so `blake3` roots equal those of agents from before the
 * format was named). Both sides compute it the same way; equal roots mean equal images.
 */
export function merkleRoot(ids: Buffer[], format: ContentIdFormat = DEFAULT_CONTENT_ID_FORMAT): Buffer {
  const m = new MerkleBuilder(format);
  for (const id of ids) m.add(id);
  return m.root();
}

/**
 * The same root, built as the ids come: memory is one leaf group plus 32 bytes
 * per 256 blocks (4 MiB for 2^25 blocks), never an id per block. A run of one
 * id (the holes of a sparse image: the zero block's id) costs no hashing for
 * the whole groups it fills: their hash is computed once.
 */
export class MerkleBuilder {
  private readonly group = Buffer.allocUnsafe(FAN * ID_BYTES);
  private inGroup = 0;
  private groups: Buffer = Buffer.allocUnsafe(1024 * ID_BYTES);
  private groupCount = 0;
  private total = 0;
  private repeated: { id: Buffer; hash: Buffer } | undefined;
  private readonly hash: (data: Uint8Array) => Buffer;

  constructor(format: ContentIdFormat = DEFAULT_CONTENT_ID_FORMAT) {
    this.hash = hashOf(format);
  }

  get count(): number {
    return this.total;
  }

  add(id: Uint8Array): void {
    this.group.set(id, this.inGroup * ID_BYTES);
    this.total++;
    if (++this.inGroup === FAN) this.closeGroup(this.hash(this.group));
  }

  /** `count` blocks in a row with content id `id`. */
  addRepeated(id: Buffer, count: number): void {
    while (count > 0 && this.inGroup !== 0) {
      this.add(id);
      count--;
    }
    if (count >= FAN) {
      if (!this.repeated?.id.equals(id)) this.repeated = { id, hash: this.hash(Buffer.concat(Array.from({ length: FAN }, () => id))) };
      for (; count >= FAN; count -= FAN) {
        this.total += FAN;
        this.closeGroup(this.repeated.hash);
      }
    }
    for (; count > 0; count--) this.add(id);
  }

  root(): Buffer {
    const tail = this.inGroup ? [this.hash(this.group.subarray(0, this.inGroup * ID_BYTES))] : [];
    return this.hash(Buffer.concat([Buffer.from(`flimcd-merkle-v1:${this.total}:`), this.groups.subarray(0, this.groupCount * ID_BYTES), ...tail]));
  }

  private closeGroup(hash: Buffer): void {
    if ((this.groupCount + 1) * ID_BYTES > this.groups.length) {
      const grown = Buffer.allocUnsafe(this.groups.length * 2);
      this.groups.copy(grown, 0, 0, this.groupCount * ID_BYTES);
      this.groups = grown;
    }
    hash.copy(this.groups, this.groupCount * ID_BYTES);
    this.groupCount++;
    this.inGroup = 0;
  }
}
