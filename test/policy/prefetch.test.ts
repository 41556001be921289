// The prefetch policy on hand-made access sequences: stream detection and the
// adaptive window, hot-area and co-access prefetch, the outstanding bound, and
// hit / waste accounting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefetchPolicy } from '../../src/policy/prefetch.ts';
import { HeatMap } from '../../src/policy/heat-map.ts';
import { PushFrontier } from '../../src/policy/push-frontier.ts';

const BS = 65536;

/** A target disk model: which blocks are present; prefetched blocks "arrive" when deliver() runs. */
function model(n: number) {
  const present = new Uint8Array(n);
  const inflight = new Set<number>();
  return {
    present,
    wanted: (b: number) => !present[b] && !inflight.has(b),
    request(_p: PrefetchPolicy, blocks: number[]) {
      for (const b of blocks) inflight.add(b);
    },
    deliver(p: PrefetchPolicy) {
      for (const b of inflight) {
        present[b] = 1;
        p.onArrived(b, true);
      }
      inflight.clear();
    },
    /** A VM read: returns what the policy asked for. */
    read(p: PrefetchPolicy, b: number, now: number, sequential?: boolean) {
      const was = present[b] === 1;
      if (!was) {
        present[b] = 1; // demand fetch
        inflight.delete(b);
      }
      const got = p.onRead(b, was, now, this.wanted, sequential);
      this.request(p, got);
      return got;
    },
  };
}

test('a miss opens a stream with the initial window; a sequential reader makes it grow', () => {
  const p = new PrefetchPolicy({ blockCount: 1000, blockSize: BS, areaBlocks: 16, initialWindow: 4, maxWindow: 32, hotAreaReads: Infinity });
  const m = model(1000);
  assert.deepEqual(m.read(p, 100, 0), [101, 102, 103, 104], 'the neighbours after the miss');
  m.deliver(p);
  const asked: number[][] = [];
  let misses = 0;
  for (let b = 101; b < 400; b++) {
    if (!m.present[b]) misses++;
    asked.push(m.read(p, b, b));
    m.deliver(p);
  }
  assert.equal(misses, 0, 'with arrivals keeping up, a sequential reader never misses again');
  const sizes = asked.filter((a) => a.length).map((a) => a.length);
  assert.ok(sizes.length >= 3);
  assert.ok(Math.max(...sizes) >= 16, `the window grew: request sizes ${sizes.join(',')}`);
  assert.ok(sizes.every((s) => s <= 32), 'never beyond maxWindow');
  assert.equal(p.stats.sequentialStreams, 1);
  assert.ok(p.stats.hits >= 290, `hits ${p.stats.hits}`);
  assert.ok(p.stats.window > 4, 'a confirmed stream widens the window new streams start with');
});

test('random misses waste neighbour prefetches, and the window shrinks to the minimum', () => {
  const p = new PrefetchPolicy({ blockCount: 100_000, blockSize: BS, areaBlocks: 16, initialWindow: 8, minWindow: 1, staleMs: 10, maxStreams: 4, hotAreaReads: Infinity });
  const m = model(100_000);
  let now = 0;
  let x = 12345;
  for (let i = 0; i < 40; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    m.read(p, (x % 99_000) + 10, (now += 50));
    m.deliver(p);
  }
  assert.equal(p.stats.window, 1, 'no stream ever continued: the window went to the minimum');
  assert.equal(p.stats.sequentialStreams, 0);
  assert.equal(p.stats.hits, 0);
  const wasted = p.finish();
  assert.ok(wasted >= 40, `unread prefetched blocks are waste: ${wasted}`);
  assert.equal(p.wastedBytes, wasted * BS);
});

test('a miss in a hot area fetches the rest of the area; a cold area only neighbours', () => {
  const heat = new HeatMap();
  heat.recordRead(3, 0, 10);
  const p = new PrefetchPolicy({ blockCount: 160, blockSize: BS, areaBlocks: 16, initialWindow: 2, hotAreaReads: 2 }, heat);
  const m = model(160);
  m.present[50] = 1; // one block of area 3 already there
  const got = m.read(p, 52, 1);
  assert.deepEqual(got.slice(0, 2), [53, 54], 'stream neighbours first');
  assert.deepEqual(new Set(got), new Set([48, 49, 51, ...Array.from({ length: 11 }, (_, i) => 53 + i)]), 'then the rest of area 3, minus what is present or asked');
  const cold = m.read(p, 100, 2);
  assert.deepEqual(cold, [101, 102]);
});

test('co-access: a miss fetches the areas read together with it at the source', () => {
  const co = new Map([[1, [7, 4]]]);
  const p = new PrefetchPolicy({ blockCount: 160, blockSize: BS, areaBlocks: 16, initialWindow: 1, hotAreaReads: Infinity, maxCoAreas: 1 }, undefined, co);
  const m = model(160);
  const got = m.read(p, 20, 0);
  assert.deepEqual(got, [21, ...Array.from({ length: 16 }, (_, i) => 7 * 16 + i)], 'neighbour, then partner area 7 only (maxCoAreas 1)');
});

test('outstanding prefetch never exceeds the byte bound, and arrivals free it', () => {
  const heat = new HeatMap();
  for (let a = 0; a < 10; a++) heat.recordRead(a, 0, 10);
  const p = new PrefetchPolicy({ blockCount: 160, blockSize: BS, areaBlocks: 16, initialWindow: 4, maxOutstandingBytes: 10 * BS }, heat);
  const m = model(160);
  const a = m.read(p, 0, 0);
  assert.equal(a.length, 10);
  assert.equal(p.outstandingBytes, 10 * BS);
  assert.deepEqual(m.read(p, 40, 1), [], 'budget full: nothing more is asked');
  assert.ok(p.stats.droppedForBudget > 0);
  m.deliver(p);
  assert.equal(p.outstandingBytes, 0);
  assert.equal(m.read(p, 80, 2).length, 10);
});

test('a read of a block still on its way is late, not a hit; its answer then is not counted unread', () => {
  const p = new PrefetchPolicy({ blockCount: 100, blockSize: BS, areaBlocks: 16, initialWindow: 2, hotAreaReads: Infinity });
  const m = model(100);
  m.read(p, 10, 0); // asks 11, 12
  m.read(p, 11, 1); // still on its way
  assert.equal(p.stats.late, 1);
  assert.equal(p.stats.hits, 0);
  m.deliver(p);
  m.read(p, 12, 2);
  assert.equal(p.stats.hits, 1);
  assert.equal(p.finish(), m.present.reduce((s, v) => s + v, 0) - 3, 'only blocks prefetched and never read are waste');
});

test('with byte continuity known, random reads next to a miss never pass for a stream', () => {
  const run = (sequential: boolean | undefined) => {
    const p = new PrefetchPolicy({ blockCount: 1000, blockSize: BS, areaBlocks: 16, initialWindow: 1, hotAreaReads: Infinity });
    const m = model(1000);
    // Random reads all over one hot area, each block missing at its first read: some land just after an earlier one.
    let x = 7;
    for (let i = 0; i < 200; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const b = 160 + (x % 16);
      const was = m.present[b] === 1;
      m.present[b] = 1;
      p.onRead(b, was, i, m.wanted, sequential);
    }
    return p.stats;
  };
  assert.ok(run(undefined).sequentialStreams > 0, 'by block numbers alone, some random reads look sequential');
  const s = run(false);
  assert.equal(s.sequentialStreams, 0);
  assert.ok(s.window <= 1, 'the window new streams start with never grew');
});

test('a sequential reader over present blocks is read ahead before it reaches missing ones', () => {
  const p = new PrefetchPolicy({ blockCount: 100, blockSize: BS, areaBlocks: 16, initialWindow: 0, hotAreaReads: Infinity });
  const m = model(100);
  for (let b = 0; b < 10; b++) m.present[b] = 1;
  m.read(p, 0, 0); // present, continues nothing: no stream
  assert.equal(p.stats.streams, 0);
  const asked: number[] = [];
  for (let b = 1; b < 10; b++) {
    const was = m.present[b] === 1;
    asked.push(...p.onRead(b, was, b * 100, m.wanted, true)); // 100 ms a block: slower than a fetch
  }
  assert.ok(asked.includes(10), `block 10 asked before the reader got there: ${asked.join(',')}`);
  assert.equal(p.stats.sequentialStreams, 1);
});

test('with a read-hot-first push, a miss fetches a hot area whole only when it is hotter than the push frontier', () => {
  const heat = new HeatMap();
  // Source heat (areas of 16 blocks): push order 1, 2, 3, 6.
  heat.recordRead(1, 0, 40);
  heat.recordRead(2, 0, 20);
  heat.recordRead(3, 0, 5);
  heat.recordRead(6, 0, 5);
  const frontier = new PushFrontier(heat.all(0), [], 16, 0);
  const p = new PrefetchPolicy({ blockCount: 160, blockSize: BS, areaBlocks: 16, initialWindow: 0, hotAreaReads: 2 }, heat, undefined, frontier);
  const m = model(160);
  assert.deepEqual(m.read(p, 40, 0, false), [], 'area 2 (heat 20) is what the push sends next: no hotter than the frontier');
  heat.recordRead(2, 1, 5); // the target sees area 2 read more
  const whole = m.read(p, 41, 1, false);
  assert.deepEqual(whole, [32, 33, 34, 35, 36, 37, 38, 39, 42, 43, 44, 45, 46, 47], 'now hotter than the frontier: the rest of area 2');
  frontier.onPushed(2 * 16);
  assert.deepEqual(m.read(p, 100, 2, false), [], 'area 6 (heat 5) is no hotter than area 3 (heat 5), next in the push');
  heat.recordRead(6, 3, 1);
  assert.equal(m.read(p, 101, 3, false).length, 14, 'one read more at the target and area 6 beats the frontier');
  assert.deepEqual(m.read(p, 150, 4, false), [], 'an area without heat is left to the push');
  assert.equal(p.stats.areaBlocks, 28);
  assert.equal(p.stats.streamBlocks, 0, 'random reads (not byte-continuous) start no read-ahead with window 0');
});

test('a reader that gets through its run faster than a fetch lands is not read ahead (it fetches on demand anyway)', () => {
  const run = (msPerBlock: number) => {
    const p = new PrefetchPolicy({ blockCount: 1000, blockSize: BS, areaBlocks: 16, fetchLatencyMs: 50, hotAreaReads: Infinity });
    const m = model(1000);
    // A 16-block file read in 32 KiB requests: two reads a block, each continuing the last.
    for (let b = 200; b < 216; b++) {
      for (let half = 0; half < 2; half++) m.read(p, b, (b - 200) * msPerBlock + half * 0.3, b > 200 || half > 0);
      if (msPerBlock > 50) m.deliver(p); // read-ahead lands before the reader gets there
    }
    return p.stats.streamBlocks;
  };
  assert.equal(run(0.6), 0, 'a burst (10 ms for the file, a fetch takes 50): nothing read ahead');
  const slow = run(100);
  assert.ok(slow > 0 && slow <= 16 + 16, `a reader slower than fetches is read ahead, never further than it has come: ${slow}`);
});

test('a sustained reader faster than one block per fetch latency (but slower than the link) gets read far enough ahead', () => {
  // Fetches land 36 ms after they are asked; the reader takes 10 ms a block when it hits and waits for a miss.
  // When it catches up with a read-ahead asked moments before, its window must not shrink to 0 for good.
  const LAT = 36;
  const p = new PrefetchPolicy({ blockCount: 400, blockSize: BS, areaBlocks: 16, fetchLatencyMs: LAT, hotAreaReads: Infinity });
  const present = new Uint8Array(400);
  const arriving = new Map<number, number>(); // block → when it lands
  const wanted = (b: number) => !present[b] && !arriving.has(b);
  let now = 0;
  let misses = 0;
  const land = () => {
    for (const [b, at] of arriving) if (at <= now) { present[b] = 1; arriving.delete(b); p.onArrived(b, true); }
  };
  for (let b = 100; b < 228; b++) {
    land();
    const was = present[b] === 1;
    const asked = p.onRead(b, was, now, wanted, b > 100);
    for (const x of asked) arriving.set(x, now + LAT);
    if (!was) {
      misses++;
      now = Math.max(now + LAT, arriving.get(b) ?? 0); // the read waits for its block (demand, or the read-ahead on its way)
      arriving.delete(b);
      present[b] = 1;
    }
    now += 10;
  }
  assert.ok(misses <= 16, `128 blocks read sequentially, ${misses} of them missed`);
  assert.ok(p.stats.hits >= 100, `read-ahead hits ${p.stats.hits}`);
});

test('a reader the push runs ahead of reads nothing ahead: prefetch would only race the push for the link', () => {
  const p = new PrefetchPolicy({ blockCount: 1000, blockSize: BS, areaBlocks: 16, hotAreaReads: Infinity, fetchLatencyMs: 0 });
  const present = new Uint8Array(1000);
  const wanted = (b: number) => !present[b];
  // The push has brought blocks 100-159 and is bringing the next (the source started it ahead of this reader: read-streams.ts).
  for (let b = 100; b < 160; b++) {
    present[b] = 1;
    p.onArrived(b, false, true);
  }
  const asked: number[] = [];
  for (let b = 100; b < 160; b++) asked.push(...p.onRead(b, true, b, wanted, b > 100));
  assert.deepEqual(asked, [], 'fed by the push: no read-ahead');
  // Blocks that came by other means (the old image, demand) leave a sequential reader its read-ahead.
  const q = new PrefetchPolicy({ blockCount: 1000, blockSize: BS, areaBlocks: 16, hotAreaReads: Infinity, fetchLatencyMs: 0 });
  const got: number[] = [];
  for (let b = 300; b < 320; b++) {
    present[b] = 1;
    got.push(...q.onRead(b, true, b, wanted, b > 300));
  }
  assert.ok(got.length > 0, 'a sequential reader over present blocks reads ahead');
});

test('the policy keeps per-block state only for blocks it touched: a 2 PiB image (2^35 blocks) builds, prefetches and finishes', () => {
  // Per-block arrays of the block count could not even be allocated here; the cut-over builds this policy.
  const n = 2 ** 35;
  const p = new PrefetchPolicy({ blockCount: n, blockSize: BS, areaBlocks: 16, initialWindow: 4 });
  const far = n - 100;
  const wanted = () => true;
  const asked = p.onRead(far, false, 0, wanted); // a miss far out opens a stream
  assert.ok(asked.length > 0 && asked.every((b) => b > far && b < n), `asked ${asked.join(',')}`);
  for (const b of asked) p.onArrived(b, true, b === asked[0]);
  p.onRead(asked[0]!, true, 1, wanted, true); // read one of them: a hit
  assert.equal(p.stats.hits, 1);
  assert.equal(p.finish(), asked.length - 1, 'the rest is waste');
});
