/**
 * Fleet benchmark (issue 17, "Measured"): a group of VMs migrated by one
 * `FleetRun` with the datacenter-wide locator and in-flight claims, against
 * the same VMs migrated as independent flimcd migrations sharing the same WAN
 * cap (each target only its own index: no locator, no claims). Two runs: the
 * real one, and the simulator's (`--sim` alone, `--no-sim` without it).
 *
 *   npm run -s bench:fleet [-- --json] [--runs N] [--vms 6] [--templates 2] [--hosts 2] [--size 16MiB] [--cap 80Mbit] [--no-workload]
 *                          [--sim | --no-sim] [--sim-vms 100] [--sim-hosts 20] [--sim-templates 5] [--sim-size 16MiB] [--sim-cap 200Mbit] [--sim-concurrency 20]
 *
 * The real run is testing/fleet/fleet-rig.ts at the CI's size by default: 6
 * VMs of 16 MiB (64 KiB blocks) cloned from 2 templates with 10 % of each
 * clone's blocks its own, each with a checked `light` workload, to 2 target
 * hosts behind a 10 ms WAN through one 80 Mbit/s cap, on a 3-master Redis
 * Cluster this script starts. A storage host of the destination holds
 * template 0.
 *
 * The simulated run (src/sim/sim-fleet.ts: the same engines on a virtual
 * clock, the fleet's FairShareLink, an in-memory locator and claims, a LAN of
 * 10 Gbit/s ports and 0.2 ms round trips) is by default 100 VMs of 16 MiB
 * (64 KiB blocks) on 20 target hosts, cloned from 5 modelled templates
 * (image-gen's mix) with 10 % of each clone's blocks its own, each with a
 * `light` workload, 20 migrating at once in `fleet run`'s order, through one
 * 200 Mbit/s cap behind a 10 ms WAN; a store host holds template 0. Each
 * mode takes about 10-40 s of CPU; runs use seeds 1..N.
 *
 * headline (medians over runs; `sim` the simulated run's):
 * - wan_over_bound: the fleet's WAN DATA bytes (the reports'
 *   wire_bytes_breakdown.data) over the group's distinct blocks that no
 *   destination host held, each zstd-compressed. Goal <= 1.05.
 * - wan_over_group_size: the same WAN bytes over the group's size (every VM's
 *   image), VMFlock's measure. Reported.
 * - time_over_independent: the fleet's makespan over the independent
 *   migrations' makespan. Goal <= 0.6.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { ratioOfMedians } from './headline.ts';
import { median } from './stats.ts';
import { log } from '../src/util/log.ts';
import { startRedisClusterRig } from '../testing/redis-cluster.ts';
import { runFleetRig, type FleetRigResult } from '../testing/fleet/fleet-rig.ts';
import { simulateFleet, type SimFleetOptions, type SimFleetResult } from '../src/sim/sim-fleet.ts';

const GOAL_WAN = 1.05;
const GOAL_TIME = 0.6;

const USAGE = 'usage: npm run -s bench:fleet [-- --json] [--runs N] [--vms 6] [--templates 2] [--hosts 2] [--size 16MiB] [--cap 80Mbit] [--no-workload]\n' +
  '                      [--sim | --no-sim] [--sim-vms 100] [--sim-hosts 20] [--sim-templates 5] [--sim-size 16MiB] [--sim-cap 200Mbit] [--sim-concurrency 20]\n';
const args = benchArgs('fleet', USAGE, {
  json: { type: 'boolean', default: false },
  runs: { type: 'string' },
  vms: { type: 'string' },
  templates: { type: 'string' },
  hosts: { type: 'string' },
  size: { type: 'string' },
  cap: { type: 'string' },
  'no-workload': { type: 'boolean', default: false },
  sim: { type: 'boolean', default: false },
  'no-sim': { type: 'boolean', default: false },
  'sim-vms': { type: 'string' },
  'sim-hosts': { type: 'string' },
  'sim-templates': { type: 'string' },
  'sim-size': { type: 'string' },
  'sim-cap': { type: 'string' },
  'sim-concurrency': { type: 'string' },
});
const runs = args.int(args.values.runs, 1, '--runs');
const vms = args.int(args.values.vms, 6, '--vms', 2);
const templates = args.int(args.values.templates, 2, '--templates');
const hosts = args.int(args.values.hosts, 2, '--hosts');
const size = args.size(args.values.size, 16 << 20, '--size');
const capBps = args.rate(args.values.cap, 80e6, '--cap');
if (size % (64 * 1024) !== 0) args.fail('--size must be a whole number of 64 KiB blocks');
if (templates > vms) args.fail('--templates must not exceed --vms');
if (args.values.sim && args.values['no-sim']) args.fail('--sim and --no-sim exclude each other');
const simConfig = {
  vms: args.int(args.values['sim-vms'], 100, '--sim-vms', 2),
  hosts: args.int(args.values['sim-hosts'], 20, '--sim-hosts'),
  templates: args.int(args.values['sim-templates'], 5, '--sim-templates'),
  imageBytes: args.size(args.values['sim-size'], 16 << 20, '--sim-size'),
  capBps: args.rate(args.values['sim-cap'], 200e6, '--sim-cap'),
  concurrency: args.int(args.values['sim-concurrency'], 20, '--sim-concurrency'),
  blockSize: 65536, changed: 0.1, rttMs: 10, storedTemplates: 1, workload: !args.values['no-workload'],
};
if (simConfig.imageBytes % 65536 !== 0) args.fail('--sim-size must be a whole number of 64 KiB blocks');
if (simConfig.templates > simConfig.vms) args.fail('--sim-templates must not exceed --sim-vms');
if (simConfig.concurrency > 256) args.fail('--sim-concurrency must be at most 256 (a plan\'s limit)');

async function redis(closers: Array<() => unknown>): Promise<string[]> {
  const rc = await startRedisClusterRig();
  closers.push(() => rc.stop());
  return rc.urls;
}

async function runReal() {
  const quiet = log.child({ bench: 'fleet' });
  const fleet: FleetRigResult[] = [];
  const independent: FleetRigResult[] = [];
  for (let i = 0; i < runs; i++) {
    for (const mode of ['fleet', 'independent'] as const) {
      const closers: Array<() => unknown> = [];
      const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-fleet-'));
      try {
        const redisUrls = mode === 'fleet' ? await redis(closers) : [];
        const r = await runFleetRig({ dir, redisUrls, mode, log: quiet, vms, templates, hosts, imageBytes: size, capBps, workload: !args.values['no-workload'] });
        if (!r.result.ok || r.mismatches) throw new Error(`${mode} run ${i}: not every VM verified (${r.result.rows.map((x) => `${x.name} ${x.phase}`).join(', ')}), ${r.mismatches} workload mismatches`);
        (mode === 'fleet' ? fleet : independent).push(r);
        if (!args.values.json) process.stderr.write(`run ${i} ${mode}: makespan ${r.makespanS.toFixed(1)} s, WAN data ${(r.wanData / 2 ** 20).toFixed(1)} MiB, bound ${(r.bound / 2 ** 20).toFixed(1)} MiB, LAN blocks ${r.lanBlocks}\n`);
      } finally {
        for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const pick = (rs: FleetRigResult[], f: (r: FleetRigResult) => number) => rs.map(f);
  const maxOf = (r: FleetRigResult, f: (row: FleetRigResult['result']['rows'][number]) => number) => Math.max(0, ...r.result.rows.map(f));
  return {
    fleet: {
      wan_data_bytes: median(pick(fleet, (r) => r.wanData)), bound_bytes: median(pick(fleet, (r) => r.bound)), group_bytes: median(pick(fleet, (r) => r.groupBytes)),
      makespan_s: median(pick(fleet, (r) => r.makespanS)), lan_blocks: median(pick(fleet, (r) => r.lanBlocks)), shareable_blocks: fleet[0]!.shareableBlocks,
      claims_wan: median(pick(fleet, (r) => r.claims.reduce((s, c) => s + c.claimedWan, 0))), claims_waited: median(pick(fleet, (r) => r.claims.reduce((s, c) => s + c.waitedFound, 0))),
      // Where the makespan goes: the slowest VM's pre-copy and downtime (a claim waited for holds the cut-over), the longest claim wait.
      precopy_max_s: median(pick(fleet, (r) => maxOf(r, (row) => row.report?.time_precopy_s ?? 0))), downtime_max_ms: median(pick(fleet, (r) => maxOf(r, (row) => row.report?.downtime_ms ?? 0))),
      claim_wait_max_ms: median(pick(fleet, (r) => Math.max(0, ...r.claims.map((c) => c.waitedMaxMs)))),
      claim_wait_mean_ms: median(pick(fleet, (r) => r.claims.reduce((s, c) => s + c.waitedMs, 0) / Math.max(1, r.claims.reduce((s, c) => s + c.waitedFound + c.waitedGaveUp, 0)))),
    },
    independent: {
      wan_data_bytes: median(pick(independent, (r) => r.wanData)), makespan_s: median(pick(independent, (r) => r.makespanS)),
      precopy_max_s: median(pick(independent, (r) => maxOf(r, (row) => row.report?.time_precopy_s ?? 0))), downtime_max_ms: median(pick(independent, (r) => maxOf(r, (row) => row.report?.downtime_ms ?? 0))),
    },
    // Each run pair (fleet, then independent, same seed): the spread behind the medians.
    runs: fleet.map((f, i) => ({
      fleet_makespan_s: +f.makespanS.toFixed(2), independent_makespan_s: +independent[i]!.makespanS.toFixed(2),
      time_over_independent: +(f.makespanS / independent[i]!.makespanS).toFixed(3), wan_over_bound: +(f.wanData / f.bound).toFixed(4),
    })),
    headline: {
      wan_over_bound: ratioOfMedians(pick(fleet, (r) => r.wanData), pick(fleet, (r) => r.bound)),
      wan_over_group_size: ratioOfMedians(pick(fleet, (r) => r.wanData), pick(fleet, (r) => r.groupBytes)),
      time_over_independent: ratioOfMedians(pick(fleet, (r) => r.makespanS), pick(independent, (r) => r.makespanS)),
      independent_wan_over_bound: ratioOfMedians(pick(independent, (r) => r.wanData), pick(fleet, (r) => r.bound)),
    },
  };
}

/** The simulated fleet, both modes, seeds 1..runs. */
async function runSim() {
  const fleet: SimFleetResult[] = [];
  const independent: SimFleetResult[] = [];
  for (let i = 0; i < runs; i++) {
    for (const mode of ['fleet', 'independent'] as const) {
      const o: SimFleetOptions = { ...simConfig, mode, seed: i + 1 };
      const r = await simulateFleet(o);
      if (r.verified !== r.vms.length) throw new Error(`simulated ${mode} run ${i}: ${r.vms.length - r.verified} of ${r.vms.length} VMs not verified`);
      (mode === 'fleet' ? fleet : independent).push(r);
      if (!args.values.json) process.stderr.write(`sim run ${i} ${mode}: makespan ${r.makespan_s.toFixed(1)} s (virtual), WAN data ${(r.wan_data_bytes / 2 ** 20).toFixed(1)} MiB, bound ${(r.bound_bytes / 2 ** 20).toFixed(1)} MiB, LAN blocks ${r.lan_blocks}, longest downtime ${Math.max(0, ...r.vms.map((v) => v.downtime_ms)).toFixed(0)} ms, ${r.wall_s.toFixed(0)} s wall\n`);
    }
  }
  const pick = (rs: SimFleetResult[], f: (r: SimFleetResult) => number) => rs.map(f);
  const section = (rs: SimFleetResult[]) => ({
    wan_data_bytes: median(pick(rs, (r) => r.wan_data_bytes)), bound_bytes: median(pick(rs, (r) => r.bound_bytes)), group_bytes: median(pick(rs, (r) => r.group_bytes)),
    makespan_s: median(pick(rs, (r) => r.makespan_s)), lan_blocks: median(pick(rs, (r) => r.lan_blocks)), lan_fetches: median(pick(rs, (r) => r.lan_fetches)),
    downtime_max_ms: median(pick(rs, (r) => Math.max(0, ...r.vms.map((v) => v.downtime_ms)))), wall_s: median(pick(rs, (r) => r.wall_s)),
  });
  return {
    fleet: {
      ...section(fleet), claims_wan: median(pick(fleet, (r) => r.claims?.claimed_wan ?? 0)), claims_waited: median(pick(fleet, (r) => r.claims?.waited_found ?? 0)),
      // Claims given up as never coming (15 s each: a sign of the claim deadlock, docs/design.md "The simulated fleet").
      claims_presumed_lost: median(pick(fleet, (r) => r.locator?.presumedLost ?? 0)),
    },
    independent: section(independent),
    headline: {
      wan_over_bound: ratioOfMedians(pick(fleet, (r) => r.wan_data_bytes), pick(fleet, (r) => r.bound_bytes)),
      wan_over_group_size: ratioOfMedians(pick(fleet, (r) => r.wan_data_bytes), pick(fleet, (r) => r.group_bytes)),
      time_over_independent: ratioOfMedians(pick(fleet, (r) => r.makespan_s), pick(independent, (r) => r.makespan_s)),
      independent_wan_over_bound: ratioOfMedians(pick(independent, (r) => r.wan_data_bytes), pick(fleet, (r) => r.bound_bytes)),
    },
  };
}

async function main(): Promise<void> {
  const real = args.values.sim ? null : await runReal();
  const sim = args.values['no-sim'] ? null : await runSim();
  const none = { wan_over_bound: null, wan_over_group_size: null, time_over_independent: null, independent_wan_over_bound: null };
  const out = {
    bench: 'fleet',
    config: { runs, vms, templates, hosts, image_bytes: size, block_size: 65536, changed: 0.1, cap_bps: capBps, rtt_ms: 10, workload: !args.values['no-workload'], sim: sim ? simConfig : null },
    load_average: loadavg()[0] ?? 0,
    fleet: real?.fleet ?? null,
    independent: real?.independent ?? null,
    runs: real?.runs ?? null,
    simulated: sim ? { fleet: sim.fleet, independent: sim.independent } : null,
    headline: { ...(real?.headline ?? none), sim: sim?.headline ?? null },
  };
  if (args.values.json) {
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  console.log(`load average ${out.load_average.toFixed(1)}`);
  if (real) printReal(real);
  if (sim) printSim(sim);
}

function printReal(out: Awaited<ReturnType<typeof runReal>>): void {
  const h = out.headline;
  console.log(`fleet of ${vms} VMs (${templates} templates, ${hosts} hosts, ${size / 2 ** 20} MiB each) through ${capBps / 1e6} Mbit/s`);
  console.log(`                WAN data MiB   makespan s   slowest pre-copy s   longest downtime ms`);
  console.log(`fleet           ${(out.fleet.wan_data_bytes / 2 ** 20).toFixed(1).padStart(12)}   ${out.fleet.makespan_s.toFixed(1).padStart(10)}   ${out.fleet.precopy_max_s.toFixed(1).padStart(18)}   ${out.fleet.downtime_max_ms.toFixed(0).padStart(19)}`);
  console.log(`independent     ${(out.independent.wan_data_bytes / 2 ** 20).toFixed(1).padStart(12)}   ${out.independent.makespan_s.toFixed(1).padStart(10)}   ${out.independent.precopy_max_s.toFixed(1).padStart(18)}   ${out.independent.downtime_max_ms.toFixed(0).padStart(19)}`);
  console.log(`claim waits: longest ${out.fleet.claim_wait_max_ms.toFixed(0)} ms, mean ${out.fleet.claim_wait_mean_ms.toFixed(0)} ms`);
  console.log(`bound (unique, not at destination, zstd): ${(out.fleet.bound_bytes / 2 ** 20).toFixed(1)} MiB; group size ${(out.fleet.group_bytes / 2 ** 20).toFixed(1)} MiB`);
  console.log(`headline: wan_over_bound ${h.wan_over_bound} (goal <= ${GOAL_WAN}: ${h.wan_over_bound <= GOAL_WAN ? 'ok' : 'ABOVE'}), wan_over_group_size ${h.wan_over_group_size}, ` +
    `time_over_independent ${h.time_over_independent} (goal <= ${GOAL_TIME}: ${h.time_over_independent <= GOAL_TIME ? 'ok' : 'ABOVE'})`);
}

function printSim(sim: Awaited<ReturnType<typeof runSim>>): void {
  const h = sim.headline;
  const c = simConfig;
  console.log(`simulated fleet of ${c.vms} VMs (${c.templates} templates, ${c.hosts} hosts, ${c.imageBytes / 2 ** 20} MiB each, ${Math.min(c.concurrency, c.vms)} at once) through ${c.capBps / 1e6} Mbit/s`);
  console.log(`                WAN data MiB   makespan s (virtual)   LAN blocks   longest downtime ms   wall s`);
  for (const [name, x] of [['fleet', sim.fleet], ['independent', sim.independent]] as const) {
    console.log(`${name.padEnd(16)}${(x.wan_data_bytes / 2 ** 20).toFixed(1).padStart(12)}   ${x.makespan_s.toFixed(1).padStart(20)}   ${String(x.lan_blocks).padStart(10)}   ${x.downtime_max_ms.toFixed(0).padStart(19)}   ${x.wall_s.toFixed(0).padStart(6)}`);
  }
  console.log(`bound (unique, not at destination, modelled zstd): ${(sim.fleet.bound_bytes / 2 ** 20).toFixed(1)} MiB; group size ${(sim.fleet.group_bytes / 2 ** 20).toFixed(1)} MiB`);
  console.log(`sim headline: wan_over_bound ${h.wan_over_bound} (goal <= ${GOAL_WAN}: ${h.wan_over_bound <= GOAL_WAN ? 'ok' : 'ABOVE'}), wan_over_group_size ${h.wan_over_group_size}, ` +
    `time_over_independent ${h.time_over_independent} (goal <= ${GOAL_TIME}: ${h.time_over_independent <= GOAL_TIME ? 'ok' : 'ABOVE'})`);
}

await main();
