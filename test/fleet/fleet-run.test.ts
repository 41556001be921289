// A fleet end to end (testing/fleet/fleet-rig.ts): 6 VMs, each with a checked
// workload running, cloned from 2 templates, migrated by one FleetRun to 2
// target hosts (3 target agents and directories each, every agent with its
// index and replica server) through one shared, capped WAN, on a real 3-master
// Redis Cluster. A storage host of the destination holds template A; template
// B is nowhere there. All 6 end verified and byte-exact, the WAN's data bytes
// are within 5 % of the group's unique not-at-destination content (zstd per
// block), and the LAN fetches are counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { tempDir } from '../helpers/tmp.ts';
import { log } from '../../src/util/log.ts';
import { runFleetRig } from '../../testing/fleet/fleet-rig.ts';

test('a fleet of 6 VMs from 2 templates to 2 hosts sends shared content over the WAN once: verified, byte-exact, WAN within 5 % of the bound', { timeout: 180_000 }, async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const r = await runFleetRig({ dir: tempDir(t), redisUrls: rc.urls, mode: 'fleet', log: log.child({ test: 'fleet-run' }) });
  const { result } = r;
  t.diagnostic(`WAN data ${r.wanData} B over bound ${r.bound} B = ${(r.wanData / r.bound).toFixed(4)}; LAN blocks ${r.lanBlocks} of ~${r.shareableBlocks}; ` +
    `shaped WAN bytes ${result.totals.wan_bytes}; claims ${JSON.stringify(r.claims)}; stores ${JSON.stringify(r.claimStores)}; makespan ${r.makespanS.toFixed(1)} s`);
  assert.equal(result.ok, true, JSON.stringify(result.rows.map((row) => [row.name, row.phase, row.error])));
  for (const row of result.rows) assert.equal(row.report?.verified, true, `${row.name} verified`);
  assert.equal(r.mismatches, 0, 'every read during the run and every byte of every target as the VM wrote it');
  assert.ok(r.wanData <= r.bound * 1.05, `WAN data bytes ${r.wanData} over the bound ${r.bound}: ${(r.wanData / r.bound).toFixed(3)}`);
  assert.ok(r.wanData >= r.bound * 0.9, `WAN data bytes ${r.wanData} far under the bound ${r.bound}: is the bound right?`);
  // Template A's unchanged blocks came from the store, template B's from the sibling that received them.
  assert.ok(r.lanBlocks >= r.shareableBlocks * 0.9, `LAN blocks ${r.lanBlocks}, expected about ${r.shareableBlocks}`);
  assert.equal(r.lanBlocks, result.rows.reduce((s, row) => s + row.report!.from_lan.blocks, 0));
  assert.ok(r.claims.reduce((s, c) => s + c.waitedFound, 0) > 0, 'siblings waited for in-flight copies');
});
