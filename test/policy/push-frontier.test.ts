// The target's picture of the read-hot-first push, on a hand-made heat map:
// whole-area prefetch is worth it only for areas hotter than the push frontier
// that the push will not reach within its lookahead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushFrontier } from '../../src/policy/push-frontier.ts';

// Areas of 2 blocks and blend 2: a step's score (predicted reads per block) equals its area's read heat.
const frontier = (lookahead: number, blocks: Array<{ block: number; reads: number }> = []) => new PushFrontier(HEAT, blocks, 2, lookahead, 2);

// Push order (pushPlan without block heat): rank 0 area 5 (reads 50), 1: area 2 (30), 2: area 9 (10), 3: area 4 (4),
// 4: area 7 (1), 5: area 3 (writes only), then every other area in block order.
const HEAT = [
  { area: 2, reads: 30, writes: 0 },
  { area: 7, reads: 1, writes: 0 },
  { area: 5, reads: 50, writes: 2 },
  { area: 4, reads: 4, writes: 0 },
  { area: 9, reads: 10, writes: 5 },
  { area: 3, reads: 0, writes: 8 },
];

test('before any push arrives the push is on the hottest area; the frontier heat is the next one\'s', () => {
  const f = frontier(1);
  assert.equal(f.frontierScore, 30);
  assert.equal(f.pushedSoon(5), true, 'being pushed');
  assert.equal(f.pushedSoon(2), true, 'within the lookahead of one area');
  assert.equal(f.pushedSoon(9), false);
  assert.equal(f.worthPrefetching(9, 10), false, 'colder than what the push sends next');
  assert.equal(f.worthPrefetching(9, 31), true, 'seen read so often at the target that it is hotter than the frontier');
  assert.equal(f.worthPrefetching(2, 100), false, 'however hot: the push brings it soon anyway');
});

test('as pushed blocks arrive the frontier moves down the order and its heat drops', () => {
  const f = frontier(1);
  f.onPushed(4);
  assert.equal(f.frontierScore, 10, 'area 9 is next');
  assert.equal(f.pushedSoon(9), true);
  assert.equal(f.pushedSoon(4), false);
  f.onPushed(18);
  assert.equal(f.frontierScore, 4);
  assert.equal(f.pushedSoon(4), true);
  assert.equal(f.worthPrefetching(7, 5), true, 'area 7 (source heat 1) seen read at the target: hotter than the frontier, and beyond the lookahead');
  assert.equal(f.worthPrefetching(7, 4), false, 'as hot as the frontier: leave it to the push');
  f.onPushed(10); // a late block of an area already passed does not move the frontier back
  assert.equal(f.frontierScore, 4);
});

test('areas the source saw no reads in: worth fetching only once the target sees them read more than the frontier', () => {
  const f = frontier(0);
  assert.equal(f.pushedSoon(100), false, 'an area without heat is not in the hot part of the order');
  assert.equal(f.worthPrefetching(100, 3), false);
  for (const a of [5, 2, 9, 4, 7]) f.onPushed(2 * a);
  assert.equal(f.frontierScore, 0, 'next is area 3, written but never read');
  assert.equal(f.worthPrefetching(100, 1), true);
  f.onPushed(6);
  assert.equal(f.worthPrefetching(3, 1), false, 'area 3 is being pushed now');
});

test('no heat at all: an area is worth fetching whole only once read at the target', () => {
  const f = new PushFrontier([], [], 2, 2, 2);
  assert.equal(f.frontierScore, 0);
  assert.equal(f.worthPrefetching(0, 0), false);
  assert.equal(f.worthPrefetching(0, 1), true);
});

test('with block heat, a hot block in a cold area is a step of its own: pushing it does not move the frontier past hotter areas', () => {
  // Block 14 (area 7, heat 1) was read 25 times itself: score 25 + 1 = 26, between area 2 (30) and area 9 (10).
  const f = frontier(0, [{ block: 14, reads: 25 }]);
  f.onPushed(10); // area 5
  assert.equal(f.frontierScore, 30, 'area 2 next');
  f.onPushed(4); // area 2
  assert.equal(f.frontierScore, 26, 'then block 14 alone');
  f.onPushed(14);
  assert.equal(f.frontierScore, 10, 'then area 9');
  assert.equal(f.pushedSoon(7), false, 'the rest of area 7 still comes late');
  f.onPushed(15); // a block of area 7's remainder arriving (e.g. fetched) jumps ahead...
  assert.equal(f.frontierScore, 0, '...and the frontier with it: past area 7 (rank 5) is area 3, written only');
});
