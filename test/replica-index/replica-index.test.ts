import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { contentId } from '../../src/content/content-id.ts';
import { Prng } from '../../src/workload/prng.ts';

const BS = 65536;

test('index add records every non-zero block once, skips holes, survives reopen, and rm removes the entries', async (t) => {
  const dir = tempDir(t);
  const img = Buffer.alloc(32 * BS);
  const rng = new Prng(3);
  for (let b = 0; b < 32; b++) if (b % 4 !== 3) rng.fill(img.subarray(b * BS, (b + 1) * BS));
  img.copy(img, 20 * BS, 1 * BS, 2 * BS); // block 20 duplicates block 1
  const p = join(dir, 'a.img');
  writeFileSync(p, img);
  truncateSync(p, 64 * BS); // a hole at the end
  let idx = ReplicaIndex.open(join(dir, 'ix'));
  const r = await indexImage(idx, p, BS);
  assert.equal(r.scannedBlocks, 24, '8 zero blocks and the 32-block hole are skipped');
  assert.equal(r.newIds, 23, 'the duplicate adds no entry');
  await idx.close();
  idx = ReplicaIndex.open(join(dir, 'ix'));
  t.after(() => idx.close());
  const loc = idx.lookup(BS, contentId(img.subarray(5 * BS, 6 * BS)));
  assert.deepEqual(loc, { path: p, offset: 5 * BS });
  assert.deepEqual(idx.lookup(BS, contentId(img.subarray(20 * BS, 21 * BS))), { path: p, offset: 1 * BS });
  assert.equal(idx.lookup(4096, contentId(img.subarray(5 * BS, 6 * BS))), undefined, 'ids are per block size');
  assert.equal(idx.list().length, 1);
  assert.equal(idx.list()[0]!.blocks, 23);
  assert.equal(idx.blockCount(BS), 23);
  // A second image sharing content keeps the first location.
  const q = join(dir, 'b.img');
  writeFileSync(q, img.subarray(0, 8 * BS));
  const r2 = await indexImage(idx, q, BS);
  assert.equal(r2.newIds, 0);
  assert.equal(await idx.removeImage(p), 23);
  assert.equal(idx.lookup(BS, contentId(img.subarray(5 * BS, 6 * BS))), undefined);
  assert.deepEqual(idx.list().map((i) => i.path), [q]);
  await assert.rejects(idx.removeImage(p), /not in the index/);
});
