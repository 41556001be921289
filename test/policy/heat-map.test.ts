// The heat map: decay, sparseness and its bound; co-access pairs; the transfer orders built on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeatMap } from '../../src/policy/heat-map.ts';
import { CoAccess } from '../../src/policy/co-access.ts';
import { precopyOrder, pushOrder } from '../../src/policy/transfer-order.ts';
import { walkAreas } from '../../src/migrate/area-walk.ts';
import { Bitmap } from '../../src/util/bitmap.ts';

test('heat decays with the half-life and is kept per area, sparsely', () => {
  const h = new HeatMap({ halfLifeMs: 1000 });
  for (let i = 0; i < 8; i++) h.recordRead(7, 0);
  h.recordWrite(1_000_000, 0, 3);
  assert.equal(h.size, 2, 'only touched areas have entries (area 1e6 of a terabyte image costs one entry)');
  assert.equal(h.reads(7, 0), 8);
  assert.ok(Math.abs(h.reads(7, 1000) - 4) < 1e-9, 'halved after one half-life');
  assert.ok(Math.abs(h.reads(7, 3000) - 1) < 1e-9);
  assert.equal(h.writes(1_000_000, 0), 3);
  assert.equal(h.reads(3, 0), 0, 'untouched area has no heat');
  h.recordRead(7, 1000); // decayed 4 + 1
  assert.ok(Math.abs(h.reads(7, 1000) - 5) < 1e-9);
  assert.deepEqual(h.hottestReads(1000, 1).map((x) => x.area), [7]);
});

test('heat map stays within maxEntries by evicting the coldest areas', () => {
  const h = new HeatMap({ maxEntries: 100, halfLifeMs: 60_000 });
  for (let i = 0; i < 10; i++) for (let k = 0; k < 50; k++) h.recordRead(i, 0); // 10 hot areas
  for (let a = 1000; a < 1500; a++) h.recordRead(a, 1); // 500 cold ones
  assert.ok(h.size <= 100, `size ${h.size}`);
  assert.ok(h.evictions >= 400);
  for (let i = 0; i < 10; i++) assert.ok(h.reads(i, 1) > 40, `hot area ${i} survived eviction`);
});

test('co-access keeps pairs read together and forgets coincidences (bounded partners)', () => {
  const c = new CoAccess({ windowMs: 10, maxPartners: 2 });
  let t = 0;
  // Area 5 is always followed by area 900 within 1 ms; in between, random areas far apart in time.
  for (let i = 0; i < 20; i++) {
    c.observe(5, t);
    c.observe(900, t + 1);
    t += 100;
    c.observe(100 + i, t);
    t += 100;
  }
  assert.deepEqual(c.partners(5), [900]);
  assert.deepEqual(c.partners(900), [5]);
  assert.deepEqual(c.partners(100), [], 'a lone read has no partners');
  // A newcomer to a full list decrements instead of entering.
  const d = new CoAccess({ windowMs: 1000, maxPartners: 1, recent: 1 });
  d.observe(1, 0); d.observe(2, 1); d.observe(1, 2); d.observe(2, 3); d.observe(1, 4); // 1<->2 several times
  d.observe(3, 5); // 1 -> 3: list of 1 is full, 2's count drops by one
  assert.deepEqual(d.partners(1, 1), [2]);
  assert.equal(d.export([1, 2, 77], 1).length, 2);
});

test('pre-copy order: cold areas in block order first, write-hot areas last, hottest at the very end', () => {
  const heat = [
    { area: 2, reads: 50, writes: 0 },
    { area: 5, reads: 0, writes: 9 },
    { area: 1, reads: 0, writes: 30 },
    { area: 3, reads: 1, writes: 2 },
  ];
  const o = precopyOrder(heat);
  assert.deepEqual(o, { first: [], last: [3, 5, 1] });
  const bits = new Bitmap(14, true); // 7 areas of 2 blocks
  assert.deepEqual([...walkAreas(bits, o, 2)], [0, 1, 4, 5, 8, 9, 12, 13, 6, 7, 10, 11, 2, 3]);
});

test('push order: read-hot areas first (hottest first), then the rest in block order', () => {
  const heat = [
    { area: 4, reads: 3, writes: 0 },
    { area: 1, reads: 10, writes: 0 },
    { area: 6, reads: 3, writes: 5 },
    { area: 0, reads: 0, writes: 0 },
  ];
  const o = pushOrder(heat);
  assert.deepEqual(o.first, [1, 6, 4]);
  const bits = new Bitmap(16);
  for (const b of [0, 3, 8, 9, 13, 15]) bits.set(b);
  // areas of 2 blocks: 1 → [3], 6 → [13], 4 → [8, 9], then 0, 7 in block order
  assert.deepEqual([...walkAreas(bits, o, 2)], [3, 13, 8, 9, 0, 15]);
});

test('the walk sees the bitmap live: a block set ahead of it is visited, one cleared is skipped', () => {
  const bits = new Bitmap(8);
  bits.set(1);
  bits.set(2);
  const seen: number[] = [];
  for (const b of walkAreas(bits, { first: [], last: [] }, 4)) {
    seen.push(b);
    bits.clear(b);
    if (b === 1) {
      bits.set(6);
      bits.clear(2);
    }
  }
  assert.deepEqual(seen, [1, 6]);
});

test('two time scales: a periodic job\'s read set outlasts the short half-life, a steady area keeps its rank', () => {
  const h = new HeatMap({ halfLifeMs: 60_000, longHalfLifeMs: 3_600_000 });
  const short = new HeatMap({ halfLifeMs: 60_000 });
  // Area 1: a job reading 16 times every 10 minutes; area 2: one read two minutes before "now".
  for (const m of [h, short]) {
    for (let run = 0; run < 3; run++) for (let i = 0; i < 16; i++) m.recordRead(1, run * 600_000);
    m.recordRead(2, 1_680_000);
  }
  const now = 1_800_000; // 10 minutes after the job's last run
  assert.ok(short.reads(1, now) < short.reads(2, now), 'one scale: the job is forgotten behind a single recent read');
  assert.ok(h.reads(1, now) > h.reads(2, now), 'two scales: the job\'s set still ranks first');
  assert.deepEqual(h.hottestReads(now, 1).map((x) => x.area), [1]);
  // A seed (the hand-off) lasts at the long scale: after 10 minutes most of it is left.
  const t = new HeatMap({ halfLifeMs: 60_000, longHalfLifeMs: 3_600_000 });
  t.seed([{ area: 9, reads: 5, writes: 1 }], 0);
  assert.ok(Math.abs(t.reads(9, 0) - 5) < 1e-9);
  assert.ok(t.reads(9, 600_000) > 4, `seeded heat after 10 min: ${t.reads(9, 600_000)}`);
  assert.ok(t.writes(9, 600_000) > 0.8);
});
