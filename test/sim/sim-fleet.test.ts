// The simulated fleet (issue 17): the real engines of 8 VMs on one virtual
// clock, cloned from 2 templates, to 3 target hosts through one shared cap.
// Small images, so each run takes a second or two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneOf, simulateFleet, type SimFleetOptions } from '../../src/sim/sim-fleet.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';

const MiB = 2 ** 20;
const small: Omit<SimFleetOptions, 'mode'> = { vms: 8, hosts: 3, templates: 2, imageBytes: 8 * MiB, capBps: 80e6, rttMs: 10 };

test('a clone keeps the template but for its own share of blocks', () => {
  const t = syntheticImage(8 * MiB, 65536, 5);
  const c = cloneOf(t, 0.1, 9);
  let differ = 0;
  for (let b = 0; b < t.blocks; b++) if (c.ids[b] !== t.ids[b]) differ++;
  assert.equal(differ, Math.round(t.blocks * 0.1));
});

test('fleet: every VM verified, WAN DATA within 5 % of the bound, shared content over the LAN', async () => {
  const r = await simulateFleet({ ...small, mode: 'fleet' });
  assert.equal(r.verified, 8, 'every VM ends verified (Merkle roots over content ids)');
  const ratio = r.wan_data_bytes / r.bound_bytes;
  assert.ok(ratio >= 0.95 && ratio <= 1.05, `WAN ${r.wan_data_bytes} over bound ${r.bound_bytes} = ${ratio.toFixed(3)}`);
  assert.ok(r.lan_blocks > 0 && r.lan_fetches > 0, `LAN fetches counted (${r.lan_blocks} blocks, ${r.lan_fetches} fetches)`);
  assert.ok(r.claims!.waited_found > 0, 'siblings waited for claimed content and got it');
  assert.ok(r.wan_data_bytes < 0.25 * r.group_bytes, 'far below the group size');
  for (const v of r.vms) assert.ok(v.finished_s > v.started_s && v.finished_s <= r.makespan_s);
});

test('fleet without in-flight claims: shared content crosses the WAN more than once', async () => {
  const r = await simulateFleet({ ...small, mode: 'fleet', claims: false });
  assert.equal(r.verified, 8);
  const ratio = r.wan_data_bytes / r.bound_bytes;
  assert.ok(ratio > 1.2, `without claims WAN over bound is ${ratio.toFixed(3)}`);
});

test('independent migrations: no LAN, every VM whole over the WAN, a longer makespan', async () => {
  const [fleet, independent] = [await simulateFleet({ ...small, mode: 'fleet' }), await simulateFleet({ ...small, mode: 'independent' })];
  assert.equal(independent.verified, 8);
  assert.equal(independent.lan_blocks, 0);
  assert.ok(independent.wan_data_bytes > 2 * fleet.wan_data_bytes, `independent ${independent.wan_data_bytes} vs fleet ${fleet.wan_data_bytes}`);
  // Virtual seconds: the same every run (no wall-clock timing here).
  assert.ok(fleet.makespan_s < independent.makespan_s, `fleet ${fleet.makespan_s} s vs independent ${independent.makespan_s} s`);
});

test('bad sizes are refused with a line naming them', async () => {
  await assert.rejects(simulateFleet({ ...small, mode: 'fleet', templates: 9 }), /templates must be 1 to vms/);
  await assert.rejects(simulateFleet({ ...small, mode: 'fleet', imageBytes: 1000 }), /whole number of 65536-byte blocks/);
});
