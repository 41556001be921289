import { DEFAULT_CONTENT_ID_FORMAT, hashOf, type ContentIdFormat } from './content-id.ts';

/** Content ids per leaf group of the Merkle tree. */
const FAN = 256;

/**
 * Merkle root over the content ids of all blocks, in block order: a two-level
 * tree with fan-out 256 (leaf groups hashed, then the group hashes), hashed in
 * the ids' own format (so `blake3` roots equal those of agents from before the
 * format was named). Both sides compute it the same way; equal roots mean equal images.
 */
export function merkleRoot(ids: Buffer[], format: ContentIdFormat = DEFAULT_CONTENT_ID_FORMAT): Buffer {
  const hash = hashOf(format);
  const groups: Buffer[] = [];
  for (let i = 0; i < ids.length; i += FAN) groups.push(hash(Buffer.concat(ids.slice(i, i + FAN))));
  return hash(Buffer.concat([Buffer.from(`flimcd-merkle-v1:${ids.length}:`), ...groups]));
}
