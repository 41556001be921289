import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketField, bucketKey, checkIdFormat, packEntry, unpackEntry, LOCATOR_VALUE_BYTES } from '../../src/locator/locator-keys.ts';
import { UsageError } from '../../src/errors.ts';

const id = Buffer.from('a1b2c3d4e5f60718293a4b5c6d7e8f90', 'hex');

test('bucket keys carry the id format, block size, a one-byte hashtag and the first B bits', () => {
  assert.equal(bucketKey('blake3', 65536, id, 16), 'fl:blake3:64:{a1}a1b2');
  assert.equal(bucketKey('blake3', 65536, id, 11), `fl:blake3:64:{a1}${(0xa1b2 >> 5).toString(16)}`);
  assert.equal(bucketKey('sha256', 4096, id, 24), 'fl:sha256:4:{a1}a1b2c3');
  assert.notEqual(bucketKey('blake3', 65536, id), bucketKey('sha256', 65536, id), 'formats never share a bucket');
  assert.throws(() => bucketKey('blake3', 65536, id.subarray(0, 8)), RangeError);
});

test('the field holds the id bytes after the whole key bytes, up to 96 bits', () => {
  assert.deepEqual(bucketField(id, 16), id.subarray(2, 12));
  assert.deepEqual(bucketField(id, 11), id.subarray(1, 12));
  assert.deepEqual(bucketField(id, 24), id.subarray(3, 12));
});

test('entries pack into 11 bytes and back; out-of-range numbers are refused', () => {
  const e = { host: 65535, image: 0xfffffffe, block: 2 ** 40 - 1 };
  const v = packEntry(e);
  assert.equal(v.length, LOCATOR_VALUE_BYTES);
  assert.deepEqual(unpackEntry(v), e);
  assert.equal(unpackEntry(Buffer.alloc(5)), undefined, 'a value of another layout reads as absent');
  assert.equal(unpackEntry(null), undefined);
  assert.throws(() => packEntry({ host: 65536, image: 1, block: 1 }), RangeError);
  assert.throws(() => packEntry({ host: 1, image: 1, block: 2 ** 40 }), RangeError);
  assert.throws(() => packEntry({ host: 1, image: -1, block: 1 }), RangeError);
});

test('id format names are short and key-safe', () => {
  assert.equal(checkIdFormat('blake3'), 'blake3');
  assert.throws(() => checkIdFormat('BLAKE3'), UsageError);
  assert.throws(() => checkIdFormat('a:b'), UsageError);
});
