// The one clock module: the virtual clock's ordering and its two ways of
// driving time (step by step, or advance to a time), and the real clock's
// zero-delay and cancelled timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock, realClock, sleep } from '../../src/util/clock.ts';

test('VirtualClock: timers run at their own time, in order, ties by creation; cancel works', () => {
  const clock = new VirtualClock(100);
  const ran: string[] = [];
  const at = (name: string) => () => ran.push(`${name}@${clock.now()}`);
  clock.setTimer(5, at('b'));
  clock.setTimer(1, at('a'));
  const c = clock.setTimer(3, at('cancelled'));
  clock.setTimer(5, at('b2'));
  clock.setTimer(2, () => {
    ran.push(`x@${clock.now()}`);
    clock.setTimer(0, at('x-now'));
  });
  c.cancel();
  c.cancel();
  assert.equal(clock.pending, 4);
  assert.equal(clock.nextAt(), 101);
  clock.advance(4);
  assert.deepEqual(ran, ['a@101', 'x@102', 'x-now@102']);
  assert.equal(clock.now(), 104);
  clock.runAll();
  assert.deepEqual(ran.slice(3), ['b@105', 'b2@105']);
  assert.equal(clock.pending, 0);
  assert.equal(clock.nextAt(), undefined);
  // Many timers in random order come out sorted.
  const times: number[] = [];
  for (let i = 0; i < 2000; i++) clock.setTimer((i * 7919) % 1000, () => times.push(clock.now()));
  clock.runAll();
  assert.equal(times.length, 2000);
  assert.ok(times.every((x, i) => i === 0 || x >= times[i - 1]!));
});

test('VirtualClock: step fires one timer at a time and jumps time to it; a timer in the past runs at now', () => {
  const clock = new VirtualClock();
  const ran: number[] = [];
  clock.setTimer(30, () => ran.push(clock.now()));
  clock.setTimer(10, () => ran.push(clock.now()));
  const dead = clock.setTimer(20, () => ran.push(-1));
  dead.cancel();
  assert.equal(clock.step(), true);
  assert.deepEqual(ran, [10]);
  assert.equal(clock.nextAt(), 30, 'the cancelled timer is skipped');
  assert.equal(clock.step(), true);
  assert.deepEqual(ran, [10, 30]);
  assert.equal(clock.step(), false);
  assert.equal(clock.now(), 30);
  clock.setTimer(-5, () => ran.push(clock.now()));
  clock.advanceTo(25); // never moves time backwards
  assert.equal(clock.now(), 30);
  clock.advanceTo(50);
  assert.deepEqual(ran, [10, 30, 30], 'a negative delay is due now, not in the past');
  assert.equal(clock.now(), 50);
});

test('VirtualClock: runAll stops at its limit and leaves later timers pending', () => {
  const clock = new VirtualClock();
  let fired = 0;
  const again = (): void => {
    fired++;
    clock.setTimer(100, again);
  };
  clock.setTimer(100, again);
  clock.runAll(1000);
  assert.equal(fired, 10);
  assert.equal(clock.pending, 1);
});

test('realClock: a zero timer runs before a 1 ms one; a cancelled timer never runs; sleep waits about as long as asked', async () => {
  const order: string[] = [];
  await new Promise<void>((resolve) => {
    realClock.setTimer(1, () => {
      order.push('1ms');
      resolve();
    });
    realClock.setTimer(0, () => order.push('0ms'));
    realClock.setTimer(0, () => order.push('cancelled')).cancel();
    realClock.setTimer(2, () => order.push('cancelled')).cancel();
  });
  await sleep(realClock, 5);
  assert.deepEqual(order, ['0ms', '1ms']);
  const t0 = realClock.now();
  await sleep(realClock, 20);
  const waited = realClock.now() - t0;
  assert.ok(waited >= 19 && waited < 500, `${waited} ms`);
});
