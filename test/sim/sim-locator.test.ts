// The fleet simulation's in-memory locator and in-flight claims.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimLocator } from '../../src/sim/sim-locator.ts';
import { VirtualClock, sleep } from '../../src/util/clock.ts';
import { runVirtual } from '../../src/sim/simulate.ts';
import { OUT_OF_ORDER_MS } from '../../src/locator/claims.ts';

const id = (n: number) => { const b = Buffer.alloc(32); b.writeUInt32LE(n, 0); return b; };
const BS = 65536;

test('claims: the first wins, siblings see the holder; publishing releases it and the content is found', () => {
  const loc = new SimLocator(new VirtualClock());
  assert.deepEqual(loc.claim(BS, id(1), 'vm0'), { won: true });
  assert.deepEqual(loc.claim(BS, id(1), 'vm1'), { won: false, holder: 'vm0' });
  loc.publish(BS, { host: 'h0', owner: 'vm0', path: '/sim/h0/vm0.img' }, [{ id: id(1), offset: 3 * BS }]);
  loc.release(BS, [id(1)], 'vm1');
  assert.ok(loc.stillClaimed(BS, id(1)), 'only the holder releases its claim');
  loc.release(BS, [id(1)], 'vm0');
  assert.ok(!loc.stillClaimed(BS, id(1)));
  assert.deepEqual(loc.find(BS, id(1)), { host: 'h0', owner: 'vm0', path: '/sim/h0/vm0.img', offset: 3 * BS });
  loc.publish(BS, { host: 'h1', owner: 'vm1', path: '/sim/h1/vm1.img' }, [{ id: id(1), offset: 0 }]);
  assert.equal(loc.find(BS, id(1))!.host, 'h0', 'the first location wins');
  loc.forget(BS, id(1));
  assert.equal(loc.find(BS, id(1)), undefined);
});

test('claims: one older than a later delivered one is presumed lost; a finished holder gives its claims up', async () => {
  const clock = new VirtualClock();
  const loc = new SimLocator(clock);
  loc.claim(BS, id(1), 'vm0');
  loc.claim(BS, id(2), 'vm0');
  loc.release(BS, [id(2)], 'vm0');
  await runVirtual(clock, sleep(clock, 10_000), 60_000);
  loc.claim(BS, id(3), 'vm1');
  await runVirtual(clock, sleep(clock, OUT_OF_ORDER_MS - 10_000 + 2500), 60_000);
  assert.ok(!loc.stillClaimed(BS, id(1)), 'claimed before one delivered long ago: never coming');
  assert.equal(loc.stats.presumedLost, 1);
  assert.ok(loc.stillClaimed(BS, id(3)));
  loc.releaseAll('vm1');
  assert.ok(!loc.stillClaimed(BS, id(3)));
  loc.close();
});
