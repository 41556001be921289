// The fleet simulation's in-memory locator and in-flight claims.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimLocator } from '../../src/sim/sim-locator.ts';
import { VirtualClock, sleep } from '../../src/util/clock.ts';
import { runVirtual } from '../../src/sim/simulate.ts';
import { QUIET_MS, RENEW_EVERY_MS } from '../../src/locator/claims.ts';

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

test('claims: an abandoned one goes once no block awaits it; a given-up one is taken over; a quiet holder\'s are presumed lost; a finished holder gives its claims up', async () => {
  const clock = new VirtualClock();
  const loc = new SimLocator(clock);
  loc.claim(BS, id(1), 'vm0');
  loc.claim(BS, id(1), 'vm0'); // a second block of vm0 awaits the same content
  loc.abandon(BS, [id(1)], 'vm0');
  assert.ok(loc.stillClaimed(BS, id(1)), 'still awaited by the other block');
  loc.abandon(BS, [id(1)], 'vm0');
  assert.ok(!loc.stillClaimed(BS, id(1)));
  assert.equal(loc.stats.abandoned, 1);
  assert.equal(loc.takeOver(BS, id(1), 'vm0', 'vm1'), 'vm1', 'given up: the first waiter takes it');
  assert.equal(loc.takeOver(BS, id(1), 'vm0', 'vm2'), 'vm1', 'the next one waits for that copy');
  // vm1 keeps receiving (deliveries of other content) for 40 s: its claim stays past QUIET_MS.
  for (let k = 0; k < 8; k++) {
    await runVirtual(clock, sleep(clock, 5000), 60_000);
    loc.release(BS, [id(100 + k)], 'vm1');
  }
  assert.ok(loc.stillClaimed(BS, id(1)));
  loc.claim(BS, id(3), 'vm2');
  await runVirtual(clock, sleep(clock, QUIET_MS + 2 * RENEW_EVERY_MS), 120_000);
  assert.ok(!loc.stillClaimed(BS, id(1)), 'a holder quiet for QUIET_MS: presumed lost');
  assert.equal(loc.stats.presumedLost, 2);
  loc.claim(BS, id(4), 'vm3');
  loc.releaseAll('vm3');
  assert.ok(!loc.stillClaimed(BS, id(4)));
  loc.close();
});
