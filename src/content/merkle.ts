import { blake3 } from './content-id.ts';

/** Content ids per leaf group of the Merkle tree. */
const FAN = 256;

/**
 * Merkle root over the content ids of all blocks, in block order: a two-level
 * tree with fan-out 256 (leaf groups hashed, then the group hashes). Both
 * sides compute it the same way; equal roots mean equal images.
 */
export function merkleRoot(ids: Buffer[]): Buffer {
  const groups: Buffer[] = [];
  for (let i = 0; i < ids.length; i += FAN) groups.push(blake3(Buffer.concat(ids.slice(i, i + FAN))));
  return blake3(Buffer.concat([Buffer.from(`flimcd-merkle-v1:${ids.length}:`), ...groups]));
}
