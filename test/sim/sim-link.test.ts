// The simulator's link model on a virtual clock: serialisation at the
// bandwidth, one-way delay, FIFO order, bounded send buffer with drain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { simLink, lossLimitedRate } from '../../src/sim/sim-link.ts';

test('a frame arrives after its serialisation time plus the one-way delay, in order', () => {
  const clock = new VirtualClock();
  const [a, b] = simLink(clock, { bandwidthBps: 1e6, delayMs: 25, sendBuffer: 100_000 });
  const got: Array<{ at: number; n: number }> = [];
  b.onData((c) => got.push({ at: clock.now(), n: c.length }));
  let drained = 0;
  a.onDrain(() => drained++);
  assert.equal(a.write([Buffer.alloc(62_500), Buffer.alloc(62_500)]), false, '125 kB is above the 100 kB send buffer');
  a.write([Buffer.alloc(12_500)]);
  while (clock.step());
  // 125 kB at 1 Mbit/s = 1000 ms, then 25 ms; the next 12.5 kB leaves 100 ms later.
  assert.deepEqual(got, [{ at: 1025, n: 125_000 }, { at: 1125, n: 12_500 }]);
  assert.ok(drained >= 1);
});

test('loss limits the rate as TCP would (Mathis et al.), never above the link', () => {
  assert.equal(lossLimitedRate(100e6, 50, 0), 100e6);
  const r = lossLimitedRate(1e9, 100, 0.01);
  // 1.22 * 1460 B * 8 / (0.1 s * 0.1) ≈ 1.42 Mbit/s
  assert.ok(Math.abs(r - 1.425e6) / 1.425e6 < 0.01, String(r));
  assert.throws(() => lossLimitedRate(1e9, 100, 1.5), /loss/);
});

test('a refused writer is told to write again when half the send buffer has left, not before', () => {
  const clock = new VirtualClock();
  // 1 Mbit/s: 12.5 kB leave every 100 ms.
  const [a, b] = simLink(clock, { bandwidthBps: 1e6, delayMs: 10, sendBuffer: 50_000 });
  b.onData(() => {});
  const drains: number[] = [];
  a.onDrain(() => drains.push(clock.now()));
  for (let i = 0; i < 3; i++) assert.equal(a.write([Buffer.alloc(12_500)]), true);
  assert.equal(a.write([Buffer.alloc(12_500)]), false, '50 kB queued: full');
  while (clock.step());
  // 25 kB (two frames) must have left: at 200 ms. Exactly one drain.
  assert.deepEqual(drains, [200]);
  // A writer that was never refused gets no drain calls.
  a.write([Buffer.alloc(1000)]);
  while (clock.step());
  assert.deepEqual(drains, [200]);
});
