// The post-copy push plan at block grain, on hand-made heat: hot blocks of
// an area (the hot file in it) go ahead of its cold ones, an area's own
// heat carries its other blocks, and the walk visits each block once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pushOrder, pushPlan } from '../../src/policy/transfer-order.ts';
import { walkPlan } from '../../src/migrate/area-walk.ts';
import { Bitmap } from '../../src/util/bitmap.ts';

const steps = (plan: ReturnType<typeof pushPlan>) => plan.map((it) => (it.block !== undefined ? `b${it.block}` : `a${it.area}`));

test('without block heat the plan is pushOrder\'s hot part, area for area', () => {
  const areas = [
    { area: 1, reads: 3, writes: 0 },
    { area: 4, reads: 9, writes: 1 },
    { area: 2, reads: 3, writes: 5 },
    { area: 6, reads: 0, writes: 2 },
  ];
  const plan = pushPlan(areas, [], 4);
  assert.deepEqual(steps(plan), pushOrder(areas).first.map((a) => `a${a}`));
  assert.deepEqual(steps(plan), ['a4', 'a2', 'a1', 'a6'], 'reads, then writes break ties; written-only areas last');
});

test('a block read at the source goes ahead of its area by its own reads plus the area\'s mean', () => {
  // Areas of 4 blocks, blend 2: area 1 (reads 8) scores 2 * 8 / 4 = 4 per block; area 3 (reads 12) 6.
  const areas = [
    { area: 1, reads: 8, writes: 0 },
    { area: 3, reads: 12, writes: 0 },
  ];
  const blocks = [
    { block: 5, reads: 7 }, // area 1: 7 + 4 = 11
    { block: 6, reads: 1 }, // area 1: 1 + 4 = 5
    { block: 13, reads: 2 }, // area 3: 2 + 6 = 8
    { block: 40, reads: 3 }, // area 10, no area heat: 3
  ];
  const plan = pushPlan(areas, blocks, 4, 2);
  assert.deepEqual(steps(plan), ['b5', 'b13', 'a3', 'b6', 'a1', 'b40']);
  assert.deepEqual(plan.map((s) => s.score), [11, 8, 6, 5, 4, 3]);
});

test('the walk follows the plan, visits every set block exactly once, and skips blocks cleared meanwhile', () => {
  const bits = new Bitmap(16, true);
  bits.clear(12); // present already
  const plan = pushPlan([{ area: 1, reads: 8, writes: 0 }, { area: 3, reads: 12, writes: 0 }], [{ block: 5, reads: 7 }, { block: 13, reads: 2 }], 4, 2);
  const seen: number[] = [];
  for (const b of walkPlan(bits, plan, 4)) {
    if (!bits.clear(b)) continue;
    seen.push(b);
    if (b === 13) bits.clear(2); // fetched on demand while the push ran
  }
  assert.deepEqual(seen, [5, 13, 14, 15, 4, 6, 7, 0, 1, 3, 8, 9, 10, 11]);
});
