// The fleet simulation's LAN model: fetches cost their bytes on both hosts' ports, in turn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimLan } from '../../src/sim/sim-lan.ts';
import { VirtualClock } from '../../src/util/clock.ts';
import { runVirtual } from '../../src/sim/simulate.ts';

test('fetches from one host queue on its port; other pairs do not wait; a host reading its own is free', async () => {
  const clock = new VirtualClock();
  const lan = new SimLan(clock, { bandwidthBps: 8e6, rttMs: 2 });
  const done: Record<string, number> = {};
  const at = (name: string) => () => (done[name] = clock.now());
  // 1 MB at 8 Mbit/s = 1000 ms on the wire; plus the round trip.
  const all = Promise.all([
    lan.transfer('store', 'h1', 1e6).then(at('a')),
    lan.transfer('store', 'h2', 1e6).then(at('b')),
    lan.transfer('h3', 'h4', 1e6).then(at('c')),
    lan.transfer('h5', 'h5', 1e6).then(at('d')),
  ]);
  await runVirtual(clock, all, 60_000);
  assert.equal(done.a, 1002);
  assert.equal(done.b, 2002, 'the second fetch from the store waits for its port');
  assert.equal(done.c, 1002);
  assert.equal(done.d, 0);
  assert.deepEqual(lan.stats, { fetches: 3, bytes: 3e6 });
});

test('a bad LAN model is refused', () => {
  assert.throws(() => new SimLan(new VirtualClock(), { bandwidthBps: 0, rttMs: 1 }), /LAN bandwidth/);
  assert.throws(() => new SimLan(new VirtualClock(), { bandwidthBps: 1e9, rttMs: -1 }), /round trip/);
});
