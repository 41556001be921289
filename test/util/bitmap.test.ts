// The range operations the terabyte paths use (a hole of a 2 TiB image is one range), checked
// against bit-by-bit operations on the same bitmap, population count included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../../src/util/bitmap.ts';
import { Prng } from '../../src/workload/prng.ts';

function bitByBit(size: number, ops: Array<[op: 'set' | 'clear', first: number, count: number]>): Bitmap {
  const b = new Bitmap(size);
  for (const [op, first, count] of ops) for (let i = first; i < Math.min(size, first + count); i++) b[op](i);
  return b;
}

test('setRange and clearRange match bit-by-bit updates, count included, at any alignment', () => {
  const rng = new Prng(4);
  const size = 1000;
  const ops: Array<['set' | 'clear', number, number]> = [];
  const fast = new Bitmap(size);
  for (let k = 0; k < 300; k++) {
    const op = rng.next() < 0.6 ? 'set' : 'clear';
    const first = rng.int(size);
    const count = rng.int(200);
    ops.push([op, first, count]);
    if (op === 'set') fast.setRange(first, count);
    else fast.clearRange(first, count);
  }
  const slow = bitByBit(size, ops);
  assert.deepEqual(Buffer.from(fast.bits), Buffer.from(slow.bits));
  assert.equal(fast.count, slow.count);
});

test('nextSet and nextClear stop at an end bound; setSpan copies a span of bits', () => {
  const b = new Bitmap(100);
  b.setRange(10, 20);
  assert.equal(b.nextSet(0), 10);
  assert.equal(b.nextSet(0, 10), -1);
  assert.equal(b.nextClear(10), 30);
  assert.equal(b.nextClear(10, 25), 25);
  assert.equal(b.nextClear(95), 95);
  b.setAll();
  assert.equal(b.nextClear(0), 100);
  const c = new Bitmap(100);
  c.setSpan(16, 16, new Uint8Array([0b1010_0001, 0xff]));
  assert.deepEqual([...c.setBits()], [16, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31]);
  assert.equal(c.count, 11);
});
