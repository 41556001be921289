import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blake3, blockId, contentId, isZero, REAL_CONTENT_MODEL, zeroContentId, type ContentModel } from '../../src/content/content-id.ts';

test('content ids are BLAKE3-256 of the bytes: equal bytes, equal ids; one bit differs, the id differs', () => {
  const a = Buffer.alloc(4096, 7);
  const b = Buffer.from(a);
  assert.equal(contentId(a).length, 32);
  assert.ok(contentId(a).equals(contentId(b)));
  b[4095]! ^= 1;
  assert.ok(!contentId(a).equals(contentId(b)));
  // The BLAKE3 test vector for the empty input.
  assert.equal(blake3(new Uint8Array(0)).toString('hex'), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
});

test('isZero: word-wise and byte-wise, at any alignment', () => {
  const buf = Buffer.alloc(1000);
  assert.equal(isZero(buf), true);
  assert.equal(isZero(buf.subarray(3, 997)), true);
  buf[998] = 1;
  assert.equal(isZero(buf), false);
  assert.equal(isZero(buf.subarray(3, 997)), true);
  buf[5] = 1;
  assert.equal(isZero(buf.subarray(3, 997)), false);
});

test('blockId: a zero block gets the zero id without the model hashing it; other blocks the model names', () => {
  const hashed: number[] = [];
  const model: ContentModel = { format: REAL_CONTENT_MODEL.format, id: (b) => { hashed.push(b.length); return REAL_CONTENT_MODEL.id(b); }, isZero: REAL_CONTENT_MODEL.isZero };
  assert.ok(blockId(model, new Uint8Array(65536)).equals(zeroContentId(65536)));
  assert.ok(zeroContentId(65536).equals(contentId(new Uint8Array(65536))));
  assert.deepEqual(hashed, []);
  const data = Buffer.alloc(65536, 1);
  assert.ok(blockId(model, data).equals(contentId(data)));
  assert.deepEqual(hashed, [65536]);
});
