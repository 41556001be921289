// The pure scheduling model of one link direction, with exact expectations.
// 8 Mbit/s = 1000 bytes per ms and 1000-byte segments make every time a round number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkDirection, autoSegmentBytes, type Segment } from '../../src/wan-emulator/schedule.ts';

const RATE = 8e6; // 1000 B/ms

function dir(delayMs = 10, segmentBytes = 1000): LinkDirection<string> {
  return new LinkDirection<string>({ bandwidthBps: RATE, delayMs, segmentBytes });
}

/** Drains everything, returning [item, offset, length, departAt] per segment. */
function drainAll(d: LinkDirection<string>): Array<[string, number, number, number]> {
  const out: Array<[string, number, number, number]> = [];
  for (let i = 0; i < 100_000; i++) {
    const next = d.nextDueAt();
    if (next === Infinity) return out;
    for (const s of d.takeDue(next)) out.push([s.item, s.offset, s.length, s.departAt]);
  }
  throw new Error('did not drain');
}

test('idle link: a segment leaves at arrival + serialisation + delay, not a moment before', () => {
  const d = dir();
  d.enqueue(0, 'a', 1000);
  assert.equal(d.nextDueAt(), 11);
  assert.deepEqual(d.takeDue(10.999), []);
  const out = d.takeDue(11);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.departAt, 11);
  assert.equal(out[0]!.serialEnd, 1);
  assert.equal(d.heldBytes, 0);
  assert.equal(d.nextDueAt(), Infinity);
});

test('a chunk is cut into segments that trickle out one serialisation time apart', () => {
  const d = dir();
  d.enqueue(0, 'a', 2500);
  assert.equal(d.segmentCount, 3);
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11],
    ['a', 1000, 1000, 12],
    ['a', 2000, 500, 12.5],
  ]);
});

test('arrival after the link went idle starts a fresh serialisation', () => {
  const d = dir();
  d.enqueue(0, 'a', 1000);
  assert.equal(d.takeDue(11).length, 1);
  d.enqueue(20, 'b', 1000);
  assert.deepEqual(drainAll(d), [['b', 0, 1000, 31]]);
});

test('everything in one direction shares the serialiser in arrival order (FIFO)', () => {
  const d = dir();
  d.enqueue(0, 'a', 2000);
  d.enqueue(0.5, 'b', 1000);
  d.enqueue(0.7, 'c', 500);
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11],
    ['a', 1000, 1000, 12],
    ['b', 0, 1000, 13],
    ['c', 0, 500, 13.5],
  ]);
});

test('held and backlog bytes follow the serialiser', () => {
  const d = dir();
  d.enqueue(0, 'a', 3000);
  assert.equal(d.heldBytes, 3000);
  assert.equal(d.backlogBytes, 3000);
  d.advance(1.5);
  assert.equal(d.backlogBytes, 1500);
  assert.equal(d.inflightBytesNow, 1000);
  assert.equal(d.heldBytes, 3000);
  d.takeDue(12);
  assert.equal(d.heldBytes, 1000);
  assert.equal(d.backlogBytes, 0);
});

test('a rate change applies from the moment it is made, even halfway through a segment', () => {
  const d = dir();
  d.enqueue(0, 'a', 2000);
  d.setRate(0.5, 4e6); // 500 B/ms: the first segment has 500 B left = 1 ms
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11.5],
    ['a', 1000, 1000, 13.5],
  ]);
  assert.equal(d.bandwidthBps, 4e6);
});

test('a delay change applies to segments serialised after it; lowering it never reorders', () => {
  const d = dir(10);
  d.enqueue(0, 'a', 1000); // serialised at 1, leaves at 11
  d.setDelay(1.5, 2);
  d.enqueue(1.5, 'b', 1000); // serialised at 2.5, would leave at 4.5: held behind a until 11
  d.enqueue(20, 'c', 1000); // fresh: 20 + 1 + 2
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11],
    ['b', 0, 1000, 11],
    ['c', 0, 1000, 23],
  ]);
  // Raising it: in-flight bytes keep their time, later ones take the new delay.
  const e = dir(10);
  e.enqueue(0, 'x', 2000); // x0 serialised at 1 (leaves 11); x1 at 2
  e.setDelay(1.5, 30);
  assert.deepEqual(drainAll(e), [
    ['x', 0, 1000, 11],
    ['x', 1000, 1000, 32],
  ]);
});

test('a stall stops serialisation and departures; bytes wait and none are lost', () => {
  const d = dir(10);
  d.enqueue(0, 'a', 3000); // segments serialised at 1, 2, 3
  d.stall(1.5, 5); // until 6.5; segment 2 is half done
  assert.equal(d.stalledUntil, 6.5);
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11], // was on the wire, leaves after the stall ended anyway
    ['a', 1000, 1000, 17], // 500 B left at 6.5 → 7 + 10
    ['a', 2000, 1000, 18],
  ]);
});

test('bytes due during a stall leave when it ends; arrivals during a stall wait for its end', () => {
  const d = dir(2);
  d.enqueue(0, 'a', 1000); // leaves at 3
  d.stall(2, 5); // until 7
  d.enqueue(4, 'b', 1000); // serialised 7..8, leaves 10
  assert.deepEqual(d.takeDue(6.99), []);
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 7],
    ['b', 0, 1000, 10],
  ]);
  // Overlapping stalls extend to the later end, never shorten.
  const e = dir(2);
  e.stall(0, 10);
  e.stall(1, 2);
  assert.equal(e.stalledUntil, 10);
  e.enqueue(1, 'c', 1000);
  assert.deepEqual(drainAll(e), [['c', 0, 1000, 13]]);
});

test('a zero-length marker keeps its place behind the data (end-of-stream)', () => {
  const d = dir();
  d.enqueue(0, 'data', 1500);
  d.enqueue(0, 'end', 0);
  assert.equal(d.heldBytes, 1500);
  assert.deepEqual(drainAll(d), [
    ['data', 0, 1000, 11],
    ['data', 1000, 500, 11.5],
    ['end', 0, 0, 11.5],
  ]);
  const idle = dir();
  idle.enqueue(5, 'end', 0);
  assert.deepEqual(drainAll(idle), [['end', 0, 0, 15]]);
});

test('drop removes an item and frees the serialiser time it would have used', () => {
  const d = dir();
  d.enqueue(0, 'a', 1000);
  d.enqueue(0, 'b', 2000);
  d.enqueue(0, 'c', 1000);
  assert.equal(d.drop(0.5, (x) => x === 'b'), 2000);
  assert.equal(d.heldBytes, 2000);
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 11],
    ['c', 0, 1000, 12],
  ]);
  // Dropping a half-serialised head: the next one starts fresh.
  const e = dir();
  e.enqueue(0, 'a', 2000);
  e.drop(0.5, (x) => x === 'a');
  e.enqueue(0.5, 'b', 1000);
  assert.deepEqual(drainAll(e), [['b', 0, 1000, 11.5]]);
  // Dropping in-flight segments.
  const f = dir();
  f.enqueue(0, 'a', 1000);
  f.enqueue(0, 'b', 1000);
  assert.equal(f.drop(3, (x) => x === 'a'), 1000);
  assert.deepEqual(drainAll(f), [['b', 0, 1000, 12]]);
});

test('departureOfByte answers "when would byte N sent now leave" and agrees with enqueue', () => {
  const d = dir();
  d.enqueue(0, 'a', 2000);
  assert.equal(d.departureOfByte(0.5, 1000), 13); // 1500 B backlog, then 1000 B, then 10 ms
  assert.equal(d.departureOfByte(0.5, 1), 12.001);
  d.enqueue(0.5, 'b', 1000);
  const out = drainAll(d);
  assert.equal(out.at(-1)![3], 13);
  assert.equal(dir().departureOfByte(7, 500), 17.5);
  const s = dir();
  s.stall(0, 4);
  assert.equal(s.departureOfByte(1, 1000), 15);
});

test('time never runs backwards: an earlier now is treated as the latest seen', () => {
  const d = dir();
  d.enqueue(5, 'a', 1000);
  d.enqueue(3, 'b', 1000); // arrives "at 5"
  assert.deepEqual(drainAll(d), [
    ['a', 0, 1000, 16],
    ['b', 0, 1000, 17],
  ]);
});

test('random arrivals and rate changes: every byte once, in order, serialiser never idle with work queued', () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const d = new LinkDirection<number>({ bandwidthBps: RATE, delayMs: 7, segmentBytes: 700 });
  let now = 0;
  let total = 0;
  const got: Array<Segment<number>> = [];
  for (let i = 0; i < 300; i++) {
    now += rnd() * 3;
    const r = rnd();
    if (r < 0.05) {
      const bpm = 250 + Math.floor(rnd() * 4) * 250;
      d.setRate(now, bpm * 8000);
    } else {
      const n = 1 + Math.floor(rnd() * 3000);
      d.enqueue(now, i, n);
      total += n;
    }
    got.push(...d.takeDue(now));
  }
  for (let next = d.nextDueAt(); next !== Infinity; next = d.nextDueAt()) got.push(...d.takeDue(next));
  // Every byte arrives once, in order, and departures never go backwards.
  assert.equal(got.reduce((a, s) => a + s.length, 0), total);
  for (let i = 1; i < got.length; i++) {
    assert.ok(got[i]!.departAt >= got[i - 1]!.departAt);
    const [p, q] = [got[i - 1]!, got[i]!];
    if (p.item === q.item) assert.equal(q.offset, p.offset + p.length);
    // The serialiser never runs faster than the fastest rate used (1000 B/ms) nor idles with work queued.
    assert.ok(q.serialEnd - Math.max(p.serialEnd, q.arrival) >= q.length / 1000 - 1e-9);
    assert.ok(q.serialEnd - Math.max(p.serialEnd, q.arrival) <= q.length / 250 + 1e-9);
    assert.ok(Math.abs(q.departAt - (q.serialEnd + 7)) < 1e-9);
  }
});

test('automatic segment size is about 1 ms of serialisation, a packet to 64 KiB', () => {
  assert.equal(autoSegmentBytes(10e6), 1500);
  assert.equal(autoSegmentBytes(100e6), 12500);
  assert.equal(autoSegmentBytes(400e6), 50000);
  assert.equal(autoSegmentBytes(10e9), 65536);
  const d = new LinkDirection<string>({ bandwidthBps: 100e6, delayMs: 0 });
  d.enqueue(0, 'x', 65536);
  assert.equal(d.segmentCount, 6);
});

test('bad parameters are refused', () => {
  assert.throws(() => new LinkDirection({ bandwidthBps: 0, delayMs: 1 }), RangeError);
  assert.throws(() => new LinkDirection({ bandwidthBps: 1e6, delayMs: -1 }), RangeError);
  assert.throws(() => new LinkDirection({ bandwidthBps: 1e6, delayMs: NaN }), RangeError);
  assert.throws(() => new LinkDirection({ bandwidthBps: 1e6, delayMs: 1, segmentBytes: 0 }), RangeError);
  const d = dir();
  assert.throws(() => d.enqueue(0, 'x', -1), RangeError);
  assert.throws(() => d.enqueue(0, 'x', 1.5), RangeError);
  assert.throws(() => d.stall(0, -5), RangeError);
  assert.throws(() => d.setRate(0, Infinity), RangeError);
});
