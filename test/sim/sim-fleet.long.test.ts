// bench:fleet's simulated size (issue 17): 100 VMs of 16 MiB on 20 target hosts, cloned from 5
// templates, 20 at once through 200 Mbit/s. About a minute under nice on a loaded machine
// (`npm run test:long`); the short form is sim-fleet.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulateFleet, type SimFleetOptions } from '../../src/sim/sim-fleet.ts';

const size: Omit<SimFleetOptions, 'mode'> = { vms: 100, hosts: 20, templates: 5, imageBytes: 16 * 2 ** 20, capBps: 200e6, concurrency: 20, seed: 1 };

test('100 VMs on 20 hosts: all verified, WAN within 5 % of the bound, the group in at most 0.6 of the independent time', async () => {
  const fleet = await simulateFleet({ ...size, mode: 'fleet' });
  const independent = await simulateFleet({ ...size, mode: 'independent' });
  assert.equal(fleet.verified, 100);
  assert.equal(independent.verified, 100);
  const wan = fleet.wan_data_bytes / fleet.bound_bytes;
  assert.ok(wan <= 1.05, `wan_over_bound ${wan.toFixed(3)}`);
  assert.ok(fleet.lan_blocks > 0 && fleet.lan_fetches > 0);
  // Virtual seconds: the same every run.
  const time = fleet.makespan_s / independent.makespan_s;
  assert.ok(time <= 0.6, `time_over_independent ${time.toFixed(3)}`);
});
