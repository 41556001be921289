// Byte-level continuity: what makes a read sequential for prefetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadContinuity } from '../../src/policy/read-continuity.ts';

test('a read that starts where a recent one ended is sequential; others are not', () => {
  const c = new ReadContinuity();
  assert.equal(c.read(0, 8192), false, 'the first read continues nothing');
  assert.equal(c.read(8192, 8192), true);
  assert.equal(c.read(16384, 32768), true, 'sizes may change along a stream');
  assert.equal(c.read(65536 + 4096, 8192), false, 'a gap of one page is not sequential');
  assert.equal(c.read(8192, 8192), false, 'rereading a range is not a continuation (its end moved on)');
});

test('interleaved streams are each recognised', () => {
  const c = new ReadContinuity();
  const a = 1 << 20;
  const b = 50 << 20;
  c.read(a, 4096);
  c.read(b, 4096);
  let seq = 0;
  for (let i = 1; i < 20; i++) {
    if (c.read(a + i * 4096, 4096)) seq++;
    if (c.read(b + i * 4096, 4096)) seq++;
  }
  assert.equal(seq, 38);
});

test('bounded: only the last `capacity` read ends are remembered', () => {
  const c = new ReadContinuity(4);
  c.read(0, 100);
  for (let i = 1; i <= 4; i++) c.read(i * 1000, 10);
  assert.equal(c.read(100, 10), false, 'the oldest end was forgotten');
  assert.equal(c.read(4010, 10), true, 'a recent one was not');
});
