// Faults through a fleet run whose siblings wait on in-flight claims
// (test/helpers/fleet-faults.ts: 4 small VMs from 2 templates to 2 hosts on a
// real 3-master Redis Cluster): a claim holder that died and a holder's replica
// server killed mid-run. Each run ends with every VM verified and byte-exact, no
// VM waits out a dead holder's claims, and the fault is one warning. A Redis
// master killed and stale entries under claims are fleet-faults.long.test.ts
// (the single-migration forms are in test/locator/lan-fetch.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { BS, faultyFleet, sum, templateIds } from '../helpers/fleet-faults.ts';
import { ClaimStore } from '../../src/locator/claims.ts';
import { ReplicaServer } from '../../src/locator/replica-server.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { DEFAULT_CONTENT_ID_FORMAT } from '../../src/content/content-id.ts';
import { formatAddress } from '../../src/util/address.ts';
import { VirtualClock } from '../../src/util/clock.ts';

test('a claim holder that died (its replica server gone, its claims left for minutes): siblings take its claims over, the content still crosses the WAN once', { timeout: 90_000 }, async (t) => {
  const f = await faultyFleet(t, (_rc) => ({
    async prepared(h) {
      // A host that claimed all of template 1 and died: its replica server is gone and its claims
      // were never renewed nor released (a frozen clock), with a lifetime far beyond this test's.
      const index = ReplicaIndex.open(tempDir(t));
      const server = new ReplicaServer({ index, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, security: h.security, log: pino({ level: 'silent' }) });
      const dead = formatAddress(await server.listen());
      await server.close();
      await index.close();
      const claims = new ClaimStore({ cluster: h.locator!.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: dead, clock: new VirtualClock(), log: pino({ level: 'silent' }), ttlMs: 600_000 });
      const won = await claims.claim(BS, templateIds(h, 1));
      assert.ok(won.every((a) => a.won), 'the dead host holds every claim of template 1');
    },
  }));
  if (!f) return;
  assert.ok(sum(f.r, (c) => c.holderGone) > 0, 'siblings saw the holder gone');
  assert.ok(sum(f.r, (c) => c.takenOver) > 0, 'and took its claims over');
  // Without the take-over both clones of template 1 would fetch it: about 1.6 times the bound. With it,
  // 1.00-1.06 measured (4 MiB VMs: one block is 1.5 % of the bound; in one CI run both siblings won the
  // take-over of 7 blocks, not explained yet).
  assert.ok(f.r.wanData <= f.r.bound * 1.25, `WAN data ${f.r.wanData} over the bound ${f.r.bound}: taken-over content crossed more than once`);
  assert.deepEqual(f.warnings.filter((w) => /replica server/.test(w)).length, 1, `one warning: ${JSON.stringify(f.warnings)}`);
});

test('a holder\'s replica server killed mid-run: its waiters take its claims over, the rest crosses the WAN; verified, byte-exact', { timeout: 90_000 }, async (t) => {
  const f = await faultyFleet(t, (_rc) => ({
    async running(h) {
      const [a, b] = h.vms.filter((v) => v.template === 1);
      // Once b has waited for copies a fetched, a's replica server dies; a's migration carries on.
      await until(() => (b!.claiming!.stats.waitedFound ?? 0) >= 2 || (a!.claiming!.stats.waitedFound ?? 0) >= 2, 60_000, 'no sibling waited for a claimed copy');
      const victim = (b!.claiming!.stats.waitedFound >= 2 ? a : b)!;
      await victim.server!.close();
    },
  }));
  if (!f) return;
  assert.ok(f.r.lanBlocks > 0);
  assert.deepEqual(f.warnings.filter((w) => /replica server/.test(w)).length, 1, `one warning: ${JSON.stringify(f.warnings)}`);
});
