// In-flight claims on a real 3-master Redis Cluster: one holder wins a
// content's claim and the others see who holds it; a holder that lives renews
// its claims past their lifetime; a holder that dies stops renewing, its claims
// expire, and a sibling waiting for its copy gives up (and takes the WAN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { RedisLocator } from '../../src/locator/redis-locator.ts';
import { ReplicaClient } from '../../src/locator/replica-client.ts';
import { ClaimStore, TAKEN_OVER_HOLD_MS } from '../../src/locator/claims.ts';
import { ClaimingContent } from '../../src/locator/claiming-content.ts';
import { realClock, VirtualClock } from '../../src/util/clock.ts';
import { ephemeralPsk } from '../../src/wire/secure-link.ts';
import { DEFAULT_CONTENT_ID_FORMAT } from '../../src/content/content-id.ts';
import { log } from '../../src/util/log.ts';

const BS = 65536;
const quiet = log.child({ test: 'claims' });
const ids = (n: number) => Array.from({ length: n }, () => randomBytes(16));

test('one holder wins each claim, the others see it; release lets the next one win; a living holder renews', { timeout: 60_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet });
  t.after(() => locator.close());
  const store = (holder: string, ttlMs = 6000) => new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder, clock: realClock, log: quiet, ttlMs });
  const a = store('tcp:10.0.0.1:7100', 600);
  const b = store('tcp:10.0.0.2:7100');
  t.after(() => a.close());
  t.after(() => b.close());
  const some = ids(64);
  assert.ok((await a.claim(BS, some)).every((x) => x.won));
  const lost = await b.claim(BS, some);
  assert.ok(lost.every((x) => !x.won && x.holder === 'tcp:10.0.0.1:7100'), 'the other holder is named');
  // Past three lifetimes of 600 ms the claims are still there: renewed.
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok((await b.stillClaimed(BS, some)).every(Boolean), 'renewed while held');
  await a.release(BS, some.slice(0, 32));
  const next = await b.claim(BS, some);
  assert.deepEqual(next.map((x) => x.won), [...Array(32).fill(true), ...Array(32).fill(false)]);
  // b does not release a's claims.
  await b.release(BS, some.slice(32));
  assert.ok((await a.stillClaimed(BS, some.slice(32))).every(Boolean));
});

test('a holder that dies stops renewing: its claims expire and a waiting sibling gives up', { timeout: 60_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet });
  t.after(() => locator.close());
  // The holder's timers never fire (a frozen clock): as if its process had died after claiming.
  const dead = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.1:7100', clock: new VirtualClock(), log: quiet, ttlMs: 800 });
  const some = ids(8);
  assert.ok((await dead.claim(BS, some)).every((x) => x.won));
  const client = new ReplicaClient({ security: ephemeralPsk(), clock: realClock, log: quiet });
  t.after(() => client.close());
  const claims = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.2:7100', clock: realClock, log: quiet });
  const sibling = new ClaimingContent({ locator, client, claims, selfAddress: 'tcp:10.0.0.2:7100', clock: realClock, log: quiet });
  t.after(() => sibling.close());
  const hits = await sibling.lookup(BS, some);
  assert.ok(hits.every((h) => h?.inFlight && h.where === 'tcp:10.0.0.1:7100'), 'in flight at the holder');
  const got = await Promise.all(some.map((id, i) => sibling.fetch(BS, id, hits[i]!, Buffer.alloc(BS))));
  assert.deepEqual(got, some.map(() => false), 'no copy ever came');
  assert.equal(sibling.stats.waitedGaveUp, some.length);
  // The content is free again: the sibling claims it itself.
  for (let tries = 0; (await claims.stillClaimed(BS, some)).some(Boolean); tries++) {
    assert.ok(tries < 50, 'the dead holder\'s claims expire');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok((await claims.claim(BS, some)).every((x) => x.won));
});

test('a claim not delivered while later ones were is presumed lost and released; so is a taken-over one not delivered in time', { timeout: 60_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet });
  t.after(() => locator.close());
  const clock = new VirtualClock();
  const holder = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.1:7100', clock, log: quiet, ttlMs: 60_000 });
  t.after(() => holder.close());
  const other = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.2:7100', clock: realClock, log: quiet });
  // Claimed in this order; the last is delivered (published), the first two never are (their blocks were rewritten).
  const c = ids(3);
  assert.ok((await holder.claim(BS, c)).every((a) => a.won));
  await holder.release(BS, [c[2]!], { delivered: true });
  // A dead holder's claim, taken over: fetched on demand, it should land at once.
  const dead = ids(1);
  await new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.9:7100', clock: new VirtualClock(), log: quiet, ttlMs: 60_000 }).claim(BS, dead);
  assert.ok((await holder.takeOver(BS, dead, 'tcp:10.0.0.9:7100'))[0]!.won);
  assert.deepEqual(await other.stillClaimed(BS, [...c.slice(0, 2), ...dead]), [true, true, true]);
  // Renewals run every 2 s of this clock (each schedules the next once Redis answered); the undelivered go
  // OUT_OF_ORDER_MS after the later delivery, the taken-over one TAKEN_OVER_HOLD_MS after it was taken.
  for (let tries = 0; holder.stats.presumedLost < 3; tries++) {
    assert.ok(tries < 200, 'presumed lost');
    clock.advance(500);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(clock.now() >= TAKEN_OVER_HOLD_MS);
  for (let tries = 0; (await other.stillClaimed(BS, [...c.slice(0, 2), ...dead])).some(Boolean); tries++) {
    assert.ok(tries < 50, 'released in Redis');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(holder.heldCount, 0);
  // The tail: a last claim that no later delivery overtakes goes once nothing was delivered for QUIET_MS.
  const tail = ids(1);
  assert.ok((await holder.claim(BS, tail))[0]!.won);
  for (let tries = 0; holder.stats.presumedLost < 4; tries++) {
    assert.ok(tries < 200, 'the tail claim presumed lost');
    clock.advance(500);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(await other.stillClaimed(BS, tail), [false]);
});
