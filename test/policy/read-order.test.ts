import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadOrder } from '../../src/policy/read-order.ts';

/** A job's first pass: files scattered over the disk, read in directory order. */
const FIRST_PASS = [50, 7, 300, 12, 90, 91, 400, 3, 222, 18];

test('a job replaying its first pass is followed from where it has got to, in first-read order', () => {
  const o = new ReadOrder();
  let t = 0;
  for (const b of FIRST_PASS) o.observe(b, b, (t += 10));
  assert.deepEqual(o.continuation(t), [], 'a first pass is no replay');
  // Later, the job runs again: it has re-read the first five when the VM moves.
  t += 60_000;
  for (const b of FIRST_PASS.slice(0, 5)) o.observe(b, b, (t += 10));
  assert.deepEqual(o.continuation(t), [91, 400, 3, 222, 18]);
  assert.deepEqual(o.continuation(t, { limit: 2 }), [91, 400]);
  assert.deepEqual(o.continuation(t + 5000), [], 'a replay that stopped a while ago is over');
});

test('lone re-reads (metadata, one file again) are no replay', () => {
  const o = new ReadOrder();
  let t = 0;
  for (const b of FIRST_PASS) o.observe(b, b, (t += 10));
  for (const b of [50, 222, 7, 18, 50]) o.observe(b, b, (t += 10));
  assert.deepEqual(o.continuation(t), []);
});

test('the log is bounded: the oldest first reads drop out', () => {
  const o = new ReadOrder({ maxBlocks: 4, minReplay: 1 });
  for (let b = 0; b < 10; b++) o.observe(b, b, b);
  assert.equal(o.size, 4);
  o.observe(7, 7, 20);
  assert.deepEqual(o.continuation(20), [8, 9]);
  o.observe(2, 2, 21); // dropped from the log: a first read again, not a re-read
  assert.deepEqual(o.continuation(21), [8, 9, 2]);
});

test('metadata re-read between the files neither moves nor breaks the replay', () => {
  const o = new ReadOrder();
  let t = 0;
  const inodes = 1000;
  for (const b of [inodes, ...FIRST_PASS]) o.observe(b, b, (t += 10));
  t += 60_000;
  for (const b of FIRST_PASS.slice(0, 6)) {
    o.observe(inodes, inodes, (t += 5));
    o.observe(b, b, (t += 5));
  }
  assert.deepEqual(o.continuation(t), [400, 3, 222, 18]);
});

test('a job that starts its replay again is followed from its new start', () => {
  const o = new ReadOrder({ gapSeq: 4 }); // a log this short: a restart is more than a gap behind
  let t = 0;
  for (const b of FIRST_PASS) o.observe(b, b, (t += 10));
  for (const pass of [FIRST_PASS, FIRST_PASS.slice(0, 4)]) for (const b of pass) o.observe(b, b, (t += 10));
  assert.deepEqual(o.continuation(t), [90, 91, 400, 3, 222, 18]);
});
