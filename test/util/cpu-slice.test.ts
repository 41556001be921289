import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuSlice } from '../../src/util/cpu-slice.ts';
import { realClock, VirtualClock, type Clock } from '../../src/util/clock.ts';

/** A loop of awaits that all resolve at once, its clock advancing 1 ms a turn; returns the turn an event-loop callback ran at. */
async function busyLoop(canYield: boolean): Promise<number | undefined> {
  let t = 0;
  const clock: Clock = { now: () => t, setTimer: realClock.setTimer, ...(canYield ? { yieldTurn: realClock.yieldTurn } : {}) };
  const s = new CpuSlice(clock, 4);
  let ranAt: number | undefined;
  let turn = 0;
  setImmediate(() => (ranAt = turn));
  for (; turn < 100; turn++) {
    await s.pass();
    await Promise.resolve(); // a read the page cache answered
    t += 1;
  }
  return ranAt;
}

test('a busy loop of resolved awaits lets the event loop run once its slice of time is used up', async () => {
  assert.equal(await busyLoop(true), 4, 'the event loop ran after 4 ms of the loop, not after it');
});

test('a clock that cannot yield a turn (a virtual clock) keeps the loop as it was', async () => {
  assert.equal(await busyLoop(false), undefined);
  assert.equal((new VirtualClock() as Clock).yieldTurn, undefined, 'the simulator\'s clock must not escape its schedule');
});
