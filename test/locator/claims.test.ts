// In-flight claims on a real 3-master Redis Cluster: one holder wins a
// content's claim and the others see who holds it; a holder that lives renews
// its claims past their lifetime; a holder that dies stops renewing, its claims
// expire, and a sibling waiting for its copy gives up (and takes the WAN); an
// abandoned claim is taken over by one waiter while the others wait for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { RedisLocator } from '../../src/locator/redis-locator.ts';
import { ReplicaClient } from '../../src/locator/replica-client.ts';
import { ClaimStore, MAX_HOLD_MS, QUIET_MS } from '../../src/locator/claims.ts';
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
  // The expired claims were taken over by the sibling, which now fetches them from its own source.
  assert.equal(sibling.stats.takenOver, some.length);
  const third = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.3:7100', clock: realClock, log: quiet });
  t.after(() => third.close());
  assert.ok((await third.claim(BS, some)).every((x) => !x.won && x.holder === 'tcp:10.0.0.2:7100'));
});

test('claims held while their holder receives nothing are presumed lost and released; a holder still receiving keeps them', { timeout: 60_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet });
  t.after(() => locator.close());
  const clock = new VirtualClock();
  const holder = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.1:7100', clock, log: quiet, ttlMs: 120_000 });
  t.after(() => holder.close());
  const other = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.2:7100', clock: realClock, log: quiet });
  const c = ids(3);
  assert.ok((await holder.claim(BS, c)).every((a) => a.won));
  // A dead holder's claim, taken over: held like any other.
  const dead = ids(1);
  await new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: 'tcp:10.0.0.9:7100', clock: new VirtualClock(), log: quiet, ttlMs: 60_000 }).claim(BS, dead);
  assert.ok((await holder.takeOver(BS, dead, 'tcp:10.0.0.9:7100'))[0]!.won);
  const step = async (ms: number) => {
    clock.advance(ms);
    await new Promise((r) => setTimeout(r, 20));
  };
  // Content keeps arriving (other claims delivered, in any order) for 1.5 QUIET_MS: nothing is presumed lost.
  const delivered = ids(30);
  assert.ok((await holder.claim(BS, delivered)).every((a) => a.won));
  for (let k = 0; k < 30; k++) {
    await holder.release(BS, [delivered[29 - k]!], { delivered: true });
    await step(QUIET_MS / 20);
  }
  assert.equal(holder.stats.presumedLost, 0, 'claims of a holder still receiving content are kept');
  assert.deepEqual(await other.stillClaimed(BS, [...c, ...dead]), [true, true, true, true]);
  // Then nothing arrives: claims made now go QUIET_MS later; the old ones reach MAX_HOLD_MS first.
  const tail = ids(2);
  assert.ok((await holder.claim(BS, tail)).every((a) => a.won));
  for (let tries = 0; holder.stats.presumedLost < 2; tries++) {
    assert.ok(tries < 200, 'presumed lost once nothing arrives');
    await step(500);
  }
  assert.ok(clock.now() >= 1.5 * QUIET_MS + QUIET_MS);
  assert.equal(holder.stats.expired, 4, `held past MAX_HOLD_MS (${MAX_HOLD_MS} ms)`);
  for (let tries = 0; (await other.stillClaimed(BS, [...c, ...dead, ...tail])).some(Boolean); tries++) {
    assert.ok(tries < 50, 'released in Redis');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(holder.heldCount, 0);
});

test('an abandoned claim is released at once; a waiter takes it over and the next sibling waits for that copy', { timeout: 60_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet });
  t.after(() => locator.close());
  const client = new ReplicaClient({ security: ephemeralPsk(), clock: realClock, log: quiet });
  t.after(() => client.close());
  const sibling = (addr: string) => {
    const claims = new ClaimStore({ cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: addr, clock: realClock, log: quiet });
    const c = new ClaimingContent({ locator, client, claims, selfAddress: addr, clock: realClock, log: quiet, pollMs: 50 });
    t.after(() => c.close());
    return { c, claims };
  };
  // Addresses that accept connections and never answer: alive to a waiter watching its holder.
  const addr = async () => {
    const srv = createServer(() => undefined);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => { srv.close(); });
    return `tcp:127.0.0.1:${(srv.address() as AddressInfo).port}`;
  };
  const holder = sibling(await addr());
  const waiterAddr = await addr();
  const waiter = sibling(waiterAddr);
  const late = sibling(await addr());
  const some = ids(4);
  assert.deepEqual(await holder.c.lookup(BS, some), [undefined, undefined, undefined, undefined], 'claimed: from the WAN');
  // The holder's VM rewrote the first block twice over (two blocks awaited the same content): one abandon keeps the claim.
  assert.ok(!(await holder.claims.claim(BS, [some[0]!]))[0]!.won);
  const hits = await waiter.c.lookup(BS, some);
  assert.ok(hits.every((h) => h?.inFlight), 'in flight at the holder');
  const waits = some.map((id, i) => waiter.c.fetch(BS, id, hits[i]!, Buffer.alloc(BS)));
  holder.c.abandon(BS, [some[0]!, some[1]!]);
  assert.equal(await waits[1], false, 'the abandoned content is taken over: this waiter asks its own source');
  assert.equal(holder.claims.stats.abandoned, 1);
  assert.equal(waiter.c.stats.takenOver, 1);
  assert.deepEqual((await late.c.lookup(BS, [some[1]!]))[0], { where: waiterAddr, inFlight: true }, 'the next sibling waits for the new holder');
  holder.c.abandon(BS, [some[0]!]);
  assert.equal(await waits[0], false);
  assert.equal(waiter.c.stats.takenOver, 2);
  assert.deepEqual(await waiter.claims.stillClaimed(BS, some), [true, true, true, true], 'the rest still held');
});
