// The source's sequential readers and where the post-copy push should start for them (read-streams.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadStreams } from '../../src/policy/read-streams.ts';

test('a reader crossing small gaps between files is one stream; its continuation starts past the lead', () => {
  const s = new ReadStreams();
  let t = 0;
  // Two blocks every 20 ms (0.1 blocks/ms), with a one-block gap after block 20.
  for (let b = 10; b < 20; b += 2, t += 20) s.observe(b, b + 1, t);
  for (let b = 21; b < 31; b += 2, t += 20) s.observe(b, b + 1, t);
  assert.equal(s.size, 1, 'the gap did not start a new stream');
  t -= 20;
  const c = s.continuations(t, { leadMs: 50, horizonMs: 100, blockCount: 1000 });
  // 20 blocks over 180 ms: 0.111 blocks/ms; lead 50 ms skips 6 blocks past 31, horizon 100 ms covers 12.
  assert.equal(c[0], 31 + 6);
  assert.equal(c.length, 12);
  assert.deepEqual(c.slice(0, 3), [37, 38, 39]);
});

test('random reads, short runs and readers gone quiet give no continuation', () => {
  const s = new ReadStreams({ maxStreams: 4 });
  for (let i = 0; i < 50; i++) s.observe((i * 7919) % 5000, (i * 7919) % 5000, i);
  assert.ok(s.size <= 4, 'bounded');
  assert.deepEqual(s.continuations(50, { leadMs: 0, blockCount: 5000 }), [], 'no run of 8 blocks');
  const q = new ReadStreams();
  for (let b = 0; b < 32; b++) q.observe(b, b, 10 * b);
  assert.ok(q.continuations(320, { leadMs: 0, blockCount: 100 }).length > 0);
  assert.deepEqual(q.continuations(5000, { leadMs: 0, blockCount: 100 }), [], 'quiet for 5 s: not mid-run');
  const burst = new ReadStreams();
  for (let b = 0; b < 32; b++) burst.observe(b, b, 0.1 * b);
  assert.deepEqual(burst.continuations(4, { leadMs: 0, blockCount: 100 }), [], 'a run read in one go (3 ms) is a burst, not a reader in progress');
});

test('continuations stop at the image end and at maxBlocks; several readers, most recent first', () => {
  const s = new ReadStreams();
  for (let b = 0; b < 16; b++) s.observe(b, b, 10 * b); // 0-150 ms
  for (let b = 100; b < 116; b++) s.observe(b, b, 10 * b - 840); // 160-310 ms
  const c = s.continuations(320, { leadMs: 0, horizonMs: 1e6, maxBlocks: 5, blockCount: 119 });
  assert.deepEqual(c, [116, 117, 118, 16, 17, 18, 19, 20]);
});
