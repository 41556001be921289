// Faults through a fleet run whose siblings wait on in-flight claims
// (testing/fleet/fleet-rig.ts, 4 small VMs from 2 templates to 2 hosts on a
// real 3-master Redis Cluster): a claim holder that died, a holder's replica
// server killed mid-run, a Redis master killed mid-run, and stale locator
// entries. Each run ends with every VM verified and byte-exact, no VM waits
// out a dead holder's claims, and the fault is one warning.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { runFleetRig, type FleetRigHandles, type FleetRigOptions, type FleetRigResult } from '../../testing/fleet/fleet-rig.ts';
import { ClaimStore } from '../../src/locator/claims.ts';
import { ReplicaServer } from '../../src/locator/replica-server.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { contentId, DEFAULT_CONTENT_ID_FORMAT } from '../../src/content/content-id.ts';
import { formatAddress } from '../../src/util/address.ts';
import { VirtualClock } from '../../src/util/clock.ts';
import { Prng } from '../../src/workload/prng.ts';

const SIZE = 4 << 20;
const BS = 64 * 1024;

/** A logger that keeps its warnings (and worse). */
function recordingLog() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({ write(chunk: Buffer, _e, cb) { const l = JSON.parse(chunk.toString()) as { level: number; msg: string }; if (l.level >= 40) lines.push(l); cb(); } });
  return { log: pino({ level: 'warn' }, stream), warnings: () => lines.map((l) => l.msg) };
}

type Cluster = NonNullable<Awaited<ReturnType<typeof startRedisCluster>>>;

async function faultyFleet(t: TestContext, faults: (rc: Cluster) => FleetRigOptions['faults']): Promise<{ r: FleetRigResult; warnings: string[] } | undefined> {
  const rc = await startRedisCluster(t);
  if (!rc) return undefined;
  const rec = recordingLog();
  const r = await runFleetRig({ dir: tempDir(t), redisUrls: rc.urls, mode: 'fleet', log: rec.log, vms: 4, imageBytes: SIZE, capBps: 10e6, faults: faults(rc) });
  t.diagnostic(`WAN data ${r.wanData} B over bound ${r.bound} B = ${(r.wanData / r.bound).toFixed(3)}; LAN blocks ${r.lanBlocks}; claims ${JSON.stringify(r.claims)}; makespan ${r.makespanS.toFixed(1)} s`);
  assert.equal(r.result.ok, true, JSON.stringify(r.result.rows.map((row) => [row.name, row.phase, row.error])));
  for (const row of r.result.rows) assert.equal(row.report?.verified, true, `${row.name} verified`);
  assert.equal(r.mismatches, 0, 'every read during the run and every byte of every target as the VM wrote it');
  return { r, warnings: rec.warnings() };
}

const sum = (r: FleetRigResult, f: (c: FleetRigResult['claims'][number]) => number) => r.claims.reduce((s, c) => s + f(c), 0);
const templateIds = (h: FleetRigHandles, t: number) => Array.from({ length: SIZE / BS }, (_, b) => contentId(h.templates[t]!.subarray(b * BS, (b + 1) * BS)));

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
  // Without the take-over both clones of template 1 would fetch it: about 1.6 times the bound. Measured
  // 1.02 to 1.24: a taken-over block the winner's VM rewrote is never delivered, and after
  // TAKEN_OVER_HOLD_MS its waiter fetches it too.
  assert.ok(f.r.wanData <= f.r.bound * 1.35, `WAN data ${f.r.wanData} over the bound ${f.r.bound}: taken-over content crossed more than once`);
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

test('a Redis master killed mid-run (no replica): lookups and claims fail, blocks cross the WAN; verified, byte-exact, one warning', { timeout: 90_000 }, async (t) => {
  let killed = false;
  const f = await faultyFleet(t, (rc) => ({
    async running(h) {
      await until(() => h.lanBlocks() > 0, 60_000, 'no LAN fetch');
      await rc.kill(0);
      killed = true;
    },
  }));
  if (!f) return;
  assert.ok(killed);
  assert.deepEqual(f.warnings, [f.warnings.find((w) => /content locator/.test(w))], `one warning, the locator's: ${JSON.stringify(f.warnings)}`);
});

test('stale locator entries (the store host\'s file changed after it was published): re-hashes reject them, those blocks cross the WAN; verified, byte-exact', { timeout: 90_000 }, async (t) => {
  const spoiled = 8;
  const f = await faultyFleet(t, (_rc) => ({
    prepared(h) {
      const fd = openSync(h.storeImage, 'r+');
      const rng = new Prng(9);
      for (let b = 0; b < spoiled; b++) {
        const junk = Buffer.allocUnsafe(BS);
        rng.fill(junk);
        writeSync(fd, junk, 0, BS, b * BS * 3);
      }
      closeSync(fd);
    },
  }));
  if (!f) return;
  const stale = f.r.result.rows.reduce((s, row) => s + ((row.report!.dedup.target as { local?: { lanStale?: number } } | null)?.local?.lanStale ?? 0), 0);
  assert.ok(stale >= 1 && stale <= 2 * spoiled, `stale blocks rejected: ${stale}`);
  assert.deepEqual(f.warnings, [], 'a stale entry is routine: no warning');
});
