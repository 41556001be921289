// The in-memory index the simulator uses must answer exactly as the LMDB
// index does, so LocalContent behaves the same on both: the same image
// registered in each, then the same lookups, forgets and additions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { ReplicaIndex, type ContentIndex } from '../../src/replica-index/replica-index.ts';
import { MemoryReplicaIndex } from '../../src/replica-index/memory-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { contentId } from '../../src/content/content-id.ts';
import { Prng } from '../../src/workload/prng.ts';

const BS = 65536;

async function exercise(ix: ContentIndex, img: string, other: string, blocks: Buffer[]) {
  const add = await indexImage(ix, img, BS);
  const seen: unknown[] = [add.scannedBlocks, add.newIds, ix.blockCount(BS), ix.blockCount(4096)];
  for (const b of blocks) seen.push(ix.lookup(BS, contentId(b)) ?? null);
  await ix.forget(BS, contentId(blocks[2]!));
  seen.push(ix.lookup(BS, contentId(blocks[2]!)) ?? null);
  // A second image: first location wins for content both hold; new content is added.
  const im = await ix.ensureImage(other, { size: 8 * BS, blockSize: BS, kind: 'received' });
  seen.push(await ix.addEntries(im, [{ id: contentId(blocks[1]!), offset: 0 }, { id: contentId(blocks[2]!), offset: BS }]));
  seen.push(ix.lookup(BS, contentId(blocks[1]!)), ix.lookup(BS, contentId(blocks[2]!)), ix.blockCount(BS), im.blocks);
  return seen;
}

test('MemoryReplicaIndex answers as ReplicaIndex does: registration, lookups, first location wins, forget, counts', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(9);
  const img = Buffer.alloc(16 * BS);
  for (let b = 0; b < 16; b++) if (b % 5 !== 4) rng.fill(img.subarray(b * BS, (b + 1) * BS));
  img.copy(img, 7 * BS, 1 * BS, 2 * BS); // a duplicate: one entry
  const p = join(dir, 'base.img');
  writeFileSync(p, img);
  const blocks = Array.from({ length: 16 }, (_, b) => img.subarray(b * BS, (b + 1) * BS));
  const lmdb = ReplicaIndex.open(join(dir, 'ix'));
  t.after(() => lmdb.close());
  const real = await exercise(lmdb, p, join(dir, 'other.img'), blocks);
  const mem = await exercise(new MemoryReplicaIndex(), p, join(dir, 'other.img'), blocks);
  assert.deepEqual(mem, real);
  // And the answers are the meaningful ones, not two equal wrong ones.
  assert.equal(real[0], 13);
  assert.equal(real[1], 12);
  assert.deepEqual(real[4 + 5], { path: p, offset: 5 * BS });
  assert.equal(real[4 + 4], null, 'a zero block is not indexed');
});
