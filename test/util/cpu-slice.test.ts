import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuSlice } from '../../src/util/cpu-slice.ts';

/** A loop of awaits that all resolve at once, with `now` advancing 1 ms a turn; returns the turn an event-loop callback ran at. */
async function busyLoop(slice: (now: () => number) => CpuSlice, advance: number): Promise<number | undefined> {
  let t = 0;
  const s = slice(() => t);
  let ranAt: number | undefined;
  let turn = 0;
  setImmediate(() => (ranAt = turn));
  for (; turn < 100; turn++) {
    await s.pass();
    await Promise.resolve(); // a read the page cache answered
    t += advance;
  }
  return ranAt;
}

test('a busy loop of resolved awaits lets the event loop run once its slice of time is used up', async () => {
  const ranAt = await busyLoop((now) => new CpuSlice(now, 4), 1);
  assert.equal(ranAt, 4, 'the event loop ran after 4 ms of the loop, not after the loop');
});

test('without time passing (a virtual clock) the loop never yields', async () => {
  const ranAt = await busyLoop((now) => new CpuSlice(now, 4), 0);
  assert.equal(ranAt, undefined);
});
