import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { Keepalive } from '../../src/wire/keepalive.ts';
import { ProtocolError } from '../../src/errors.ts';

function keepalive(clock: VirtualClock, up = () => true) {
  const pings: number[] = [];
  const dead: Error[] = [];
  const k = new Keepalive({ clock, intervalMs: 1000, silenceTimeoutMs: 3500, ping: () => pings.push(clock.now()), dead: (e) => dead.push(e), linkUp: up });
  return { k, pings, dead };
}

test('pings at once and every interval while the peer is heard', () => {
  const clock = new VirtualClock();
  const { k, pings, dead } = keepalive(clock);
  k.start();
  for (let t = 500; t <= 10_000; t += 500) {
    clock.advanceTo(t);
    k.heard();
  }
  assert.deepEqual(pings, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000]);
  assert.equal(dead.length, 0);
});

test('a silent peer is declared dead after the silence timeout, and pinging stops', () => {
  const clock = new VirtualClock();
  const { k, pings, dead } = keepalive(clock);
  k.start();
  clock.advanceTo(1200);
  k.heard();
  clock.advanceTo(20_000);
  assert.equal(dead.length, 1);
  assert.ok(dead[0] instanceof ProtocolError);
  assert.match(dead[0].message, /nothing heard from the peer for 3800 ms/);
  assert.deepEqual(pings, [0, 1000, 2000, 3000, 4000]);
});

test('stop ends the pings; a timer firing with the link down does nothing', () => {
  const clock = new VirtualClock();
  let up = true;
  const { k, pings, dead } = keepalive(clock, () => up);
  k.start();
  clock.advanceTo(1500);
  k.stop();
  clock.advanceTo(10_000);
  assert.deepEqual(pings, [0, 1000]);
  k.start();
  up = false;
  clock.advanceTo(30_000);
  assert.deepEqual(pings, [0, 1000, 10_000]);
  assert.equal(dead.length, 0);
});
