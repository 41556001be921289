// The target's picture of the read-hot-first push, on a hand-made heat map:
// whole-area prefetch is worth it only for areas hotter than the push frontier
// that the push will not reach within its lookahead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushFrontier } from '../../src/policy/push-frontier.ts';

// Push order (pushOrder): rank 0 area 5 (reads 50), 1: area 2 (30), 2: area 9 (10), 3: area 4 (4),
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
  const f = new PushFrontier(HEAT, 1);
  assert.equal(f.frontierHeat, 30);
  assert.equal(f.pushedSoon(5), true, 'being pushed');
  assert.equal(f.pushedSoon(2), true, 'within the lookahead of one area');
  assert.equal(f.pushedSoon(9), false);
  assert.equal(f.worthPrefetching(9, 10), false, 'colder than what the push sends next');
  assert.equal(f.worthPrefetching(9, 31), true, 'seen read so often at the target that it is hotter than the frontier');
  assert.equal(f.worthPrefetching(2, 100), false, 'however hot: the push brings it soon anyway');
});

test('as pushed blocks arrive the frontier moves down the order and its heat drops', () => {
  const f = new PushFrontier(HEAT, 1);
  f.onPushed(2);
  assert.equal(f.frontierHeat, 10, 'area 9 is next');
  assert.equal(f.pushedSoon(9), true);
  assert.equal(f.pushedSoon(4), false);
  f.onPushed(9);
  assert.equal(f.frontierHeat, 4);
  assert.equal(f.pushedSoon(4), true);
  assert.equal(f.worthPrefetching(7, 5), true, 'area 7 (source heat 1) seen read at the target: hotter than the frontier, and beyond the lookahead');
  assert.equal(f.worthPrefetching(7, 4), false, 'as hot as the frontier: leave it to the push');
  f.onPushed(5); // a late block of an area already passed does not move the frontier back
  assert.equal(f.frontierHeat, 4);
});

test('areas the source saw no reads in: worth fetching only once the target sees them read more than the frontier', () => {
  const f = new PushFrontier(HEAT, 0);
  assert.equal(f.pushedSoon(100), false, 'an area without heat is not in the hot part of the order');
  assert.equal(f.worthPrefetching(100, 3), false);
  for (const a of [5, 2, 9, 4, 7]) f.onPushed(a);
  assert.equal(f.frontierHeat, 0, 'next is area 3, written but never read');
  assert.equal(f.worthPrefetching(100, 1), true);
  f.onPushed(3);
  assert.equal(f.worthPrefetching(3, 1), false, 'area 3 is being pushed now');
});

test('no heat at all: an area is worth fetching whole only once read at the target', () => {
  const f = new PushFrontier([], 2);
  assert.equal(f.frontierHeat, 0);
  assert.equal(f.worthPrefetching(0, 0), false);
  assert.equal(f.worthPrefetching(0, 1), true);
});
