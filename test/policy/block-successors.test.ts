// Block successors learned from the order of the VM's reads (block-successors.ts), and the
// prefetch that follows them after a miss at the target (prefetch.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockSuccessors } from '../../src/policy/block-successors.ts';
import { PrefetchPolicy } from '../../src/policy/prefetch.ts';

test('a jump the VM repeats is learned; sequential reads, pauses and one-off jumps are not', () => {
  const s = new BlockSuccessors();
  let t = 0;
  // A job, three times: inode block 7, then its file at 500-503, then block 9, then the next file at 900.
  for (let run = 0; run < 3; run++, t += 10_000) {
    s.observe(7, 7, t);
    s.observe(500, 501, t + 1);
    s.observe(502, 503, t + 2);
    s.observe(9, 9, t + 3);
    s.observe(900, 900, t + 4);
  }
  assert.equal(s.next(7), 500);
  assert.equal(s.next(503), 9);
  assert.equal(s.next(9), 900);
  assert.equal(s.next(501), undefined, 'a sequential continuation is read-ahead\'s, not a successor');
  assert.equal(s.next(900), undefined, 'a 10 s pause before the next run: not the same walk');
  s.observe(7, 7, t);
  s.observe(3000, 3000, t + 1); // once
  assert.equal(s.next(7), 500, 'one coincidence does not replace a repeated successor');
  assert.deepEqual(s.export(10).sort((a, b) => a[0] - b[0]), [[7, 500], [9, 900], [503, 9]]);
});

test('memory is bounded', () => {
  const s = new BlockSuccessors({ maxBlocks: 100 });
  for (let i = 0; i < 10_000; i++) s.observe((i * 7919) % 100_000, (i * 7919) % 100_000, i);
  assert.ok(s.size <= 100, `${s.size} entries`);
});

test('a miss fetches the learned successors, a few hops along the chain', () => {
  const follows = new Map([[7, 500], [500, 9], [9, 900], [900, 40], [40, 41]]);
  const p = new PrefetchPolicy({ blockCount: 1000, blockSize: 65536, areaBlocks: 16, hotAreaReads: Infinity, followHops: 4 }, undefined, undefined, undefined, follows);
  const got = p.onRead(7, false, 0, () => true);
  assert.deepEqual(got, [500, 9, 900, 40]);
  assert.equal(p.stats.coAccessBlocks, 4);
  const none = new PrefetchPolicy({ blockCount: 1000, blockSize: 65536, areaBlocks: 16, hotAreaReads: Infinity });
  assert.deepEqual(none.onRead(7, false, 0, () => true), [], 'without successors: nothing');
  assert.deepEqual(p.onRead(500, true, 1, () => true), [], 'a hit fetches nothing');
});
