import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contentId } from '../../src/content/content-id.ts';
import { merkleRoot } from '../../src/content/merkle.ts';

const ids = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => contentId(Buffer.from(`block ${i} ${salt}`)));

test('merkle root: equal id lists give equal roots; a changed, moved or extra block changes it', () => {
  const a = ids(600);
  assert.ok(merkleRoot(a).equals(merkleRoot(ids(600))));
  const changed = [...a];
  changed[300] = contentId(Buffer.from('other'));
  assert.ok(!merkleRoot(a).equals(merkleRoot(changed)));
  const swapped = [...a];
  [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
  assert.ok(!merkleRoot(a).equals(merkleRoot(swapped)));
  // The count is part of the root: a list that ends on a group boundary differs from one a block longer.
  assert.ok(!merkleRoot(a.slice(0, 512)).equals(merkleRoot(a.slice(0, 513))));
  assert.equal(merkleRoot([]).length, 32);
});
