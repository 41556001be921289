// WanLink on a manual clock: the whole link (two directions, one timer,
// back-pressure, live changes) with exact times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { WanLink, defaultQueueBytes, type Direction } from '../../src/wan-emulator/link.ts';

/** 8 Mbit/s = 1000 B/ms, 1000-byte segments, rtt 20 ms (10 ms each way). */
function rig(opts: { queueBytes?: number; rttMs?: number; echo?: boolean } = {}) {
  const clock = new VirtualClock();
  const log: Array<{ t: number; dir: Direction; item: string; bytes: number }> = [];
  const drains: Array<{ t: number; dir: Direction }> = [];
  const link: WanLink<string> = new WanLink<string>({
    clock,
    bandwidthBps: 8e6,
    rttMs: opts.rttMs ?? 20,
    segmentBytes: 1000,
    ...(opts.queueBytes ? { queueBytes: opts.queueBytes } : {}),
    deliver: (dir, segs) => {
      for (const s of segs) {
        log.push({ t: clock.now(), dir, item: s.item, bytes: s.length });
        if (opts.echo && dir === 'forward' && s.offset + s.length === 1000) link.send('reverse', `re:${s.item}`, 1000);
      }
    },
    onDrain: (dir) => drains.push({ t: clock.now(), dir }),
  });
  return { clock, link, log, drains };
}

test('deliveries happen exactly at arrival + serialisation + rtt/2, per segment', () => {
  const { clock, link, log } = rig();
  link.send('forward', 'a', 3000);
  clock.runAll();
  assert.deepEqual(log.map((x) => [x.t, x.item, x.bytes]), [
    [11, 'a', 1000],
    [12, 'a', 1000],
    [13, 'a', 1000],
  ]);
});

test('the two directions are independent, each with the full bandwidth', () => {
  const { clock, link, log } = rig();
  link.send('forward', 'f', 2000);
  link.send('reverse', 'r', 2000);
  clock.runAll();
  assert.deepEqual(log.map((x) => [x.t, x.dir]), [
    [11, 'forward'],
    [11, 'reverse'],
    [12, 'forward'],
    [12, 'reverse'],
  ]);
});

test('a request and its response see the full rtt (plus serialisation both ways)', () => {
  const { clock, link, log } = rig({ echo: true });
  link.send('forward', 'ping', 1000);
  clock.runAll();
  assert.deepEqual(log.map((x) => [x.t, x.item]), [
    [11, 'ping'],
    [22, 're:ping'],
  ]);
});

test('one timer for the whole link however much is queued', () => {
  const { clock, link } = rig();
  for (let i = 0; i < 200; i++) link.send(i % 2 ? 'forward' : 'reverse', `c${i}`, 700);
  assert.equal(clock.pending, 1);
  clock.advance(15);
  assert.equal(clock.pending, 1);
  clock.runAll();
  assert.equal(clock.pending, 0);
});

test('send() asks the sender to stop above the bound and onDrain says when to go on', () => {
  const { clock, link, drains } = rig({ queueBytes: 4000 });
  // bound = one-way BDP (1000 B/ms × 10 ms) + 4000 = 14000; resume at 14000 - 2000 = 12000.
  assert.equal(link.boundBytes(), 14000);
  const answers: boolean[] = [];
  for (let i = 0; i < 15; i++) answers.push(link.send('forward', `c${i}`, 1000));
  assert.deepEqual(answers, [...Array(14).fill(true), false]);
  assert.equal(link.stats().forward.blocked, true);
  assert.equal(link.send('forward', 'more', 0), false, 'stays blocked until drained');
  clock.advanceTo(12.5);
  assert.deepEqual(drains, []);
  clock.advanceTo(13); // third segment leaves: 12000 held
  assert.deepEqual(drains, [{ t: 13, dir: 'forward' }]);
  assert.equal(link.stats().forward.blocked, false);
  assert.equal(link.stats().forward.maxHeldBytes, 15000);
  assert.equal(link.stats().reverse.blocked, false);
});

test('default queue: max(256 KiB, one rtt (at least 20 ms) of bandwidth)', () => {
  assert.equal(defaultQueueBytes({ bandwidthBps: 10e6, rttMs: 40 }), 256 * 1024);
  assert.equal(defaultQueueBytes({ bandwidthBps: 1e9, rttMs: 50 }), 6_250_000);
  assert.equal(defaultQueueBytes({ bandwidthBps: 1e9, rttMs: 0 }), 2_500_000);
});

test('setLink changes rate and rtt live and reports the new settings', () => {
  const { clock, link, log } = rig();
  link.send('forward', 'a', 2000);
  clock.advanceTo(0.5);
  assert.deepEqual(link.setLink({ bandwidthBps: 4e6 }), { bandwidthBps: 4e6, rttMs: 20 });
  clock.runAll();
  assert.deepEqual(log.map((x) => x.t), [11.5, 13.5]);
  log.length = 0;
  link.setLink({ rttMs: 100 });
  link.send('forward', 'b', 1000);
  const t0 = clock.now();
  clock.runAll();
  assert.equal(log[0]!.t - t0, 2 + 50);
  assert.throws(() => link.setLink({ bandwidthBps: -1 }), RangeError);
  assert.throws(() => link.setLink({ rttMs: Infinity }), RangeError);
});

test('a stall holds both directions, then everything arrives', () => {
  const { clock, link, log } = rig();
  link.send('forward', 'f', 1000);
  link.send('reverse', 'r', 1000);
  clock.advanceTo(5);
  link.stall(20);
  assert.equal(link.stats().stalledForMs, 20);
  clock.advanceTo(24.9);
  assert.equal(log.length, 0);
  clock.runAll();
  assert.deepEqual(log.map((x) => [x.t, x.item]), [
    [25, 'f'],
    [25, 'r'],
  ]);
  assert.equal(link.stats().stalledForMs, 0);
});

test('stats count bytes in and out per direction; drop and close discard held bytes', () => {
  const { clock, link } = rig();
  link.send('forward', 'a', 2500);
  link.send('reverse', 'b', 100);
  clock.advanceTo(11);
  let s = link.stats();
  assert.deepEqual([s.forward.bytesIn, s.forward.bytesOut, s.forward.heldBytes], [2500, 1000, 1500]);
  assert.deepEqual([s.reverse.bytesIn, s.reverse.bytesOut, s.reverse.heldBytes], [100, 100, 0]);
  assert.equal(link.drop((x) => x === 'a'), 1500);
  clock.runAll();
  s = link.stats();
  assert.equal(s.forward.bytesOut, 1000);
  link.send('forward', 'c', 1000);
  link.close();
  assert.equal(clock.pending, 0);
  assert.equal(link.send('forward', 'd', 1), false);
  assert.equal(link.stats().forward.heldBytes, 0);
});

test('with a wake-up tolerance, segments due within it leave at the earlier wake', () => {
  const clock = new VirtualClock();
  const times: number[] = [];
  const link = new WanLink<string>({ clock, bandwidthBps: 8e6, rttMs: 20, segmentBytes: 1000, toleranceMs: 0.5, deliver: (_d, segs) => segs.forEach(() => times.push(clock.now())) });
  link.send('forward', 'a', 1000);
  clock.advanceTo(0.25);
  link.send('forward', 'b', 300); // serialised at 1.3, due 11.3: within 0.5 ms of a's wake at 11
  clock.runAll();
  assert.deepEqual(times, [11, 11]);
});
