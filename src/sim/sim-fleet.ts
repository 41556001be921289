/**
 * A fleet in the simulator (issue 17's simulated run): many VMs, cloned from
 * a few templates with changes of their own, each running a workload, moved
 * to the target hosts of one datacenter by the real source and target
 * engines on one VirtualClock (simulate.ts does the same for one VM).
 *
 * - WAN: every migration's link is a flow of one FairShareLink (the code
 *   `fleet run` shapes with) on the virtual clock: the cap shared by weighted
 *   fair queueing (weight = priority), the WAN's round trip on top (sim-wan.ts).
 * - Order and concurrency: as `fleet run` (src/fleet/order.ts on the VMs'
 *   allocated bytes; at most `concurrency` migrating at once, the next
 *   starting when one ends; each source told cap / concurrency as its rate).
 * - Mode `fleet`: each target host keeps one replica index of what its
 *   targets received (hosts' own copies are found there, re-hashed); a
 *   datacenter-wide locator and in-flight claims in memory (sim-locator.ts);
 *   LAN fetches on a LAN model (sim-lan.ts); a store host holds the first
 *   `storedTemplates` templates, published in the locator before the run.
 * - Mode `independent`: the same VMs, order, concurrency and cap; each target
 *   only its own (empty) index: no locator, no claims, no LAN.
 *
 * The bound (wan_over_bound's denominator): the distinct non-zero blocks of
 * the sources as migrated (frozen at the cut-over), less what the store host
 * held, each at its modelled zstd size. The group's size: every VM's image.
 * "Verified" is the engines' own check (the Merkle roots over content ids,
 * the simulator's byte-exact).
 *
 * Not modelled (as in simulate.ts): CPU (hashing, zstd, TLS: free on the
 * virtual clock), disk time of engine reads, TCP dynamics; and Redis's load
 * and failures (sim-locator.ts).
 */
import { log as rootLog } from '../util/log.ts';
import { sleep, VirtualClock } from '../util/clock.ts';
import { resolveFeatures } from '../policy/algorithm.ts';
import { buildSourceDisks, buildSourceSession, buildTargetDisks, buildTargetSession, type SourceDisks, type TargetDisks } from '../migrate/stack.ts';
import type { TargetEngine } from '../migrate/target-engine.ts';
import type { SourceEngine } from '../migrate/source-engine.ts';
import { LocalContent } from '../migrate/local-content.ts';
import type { MigrationReport } from '../migrate/report.ts';
import { MemoryReplicaIndex } from '../replica-index/memory-index.ts';
import { indexDisk } from '../replica-index/image-scan.ts';
import { orderVms, predict } from '../fleet/order.ts';
import type { FleetVm, OrderRule } from '../fleet/plan.ts';
import { RequestGenerator } from '../workload/generator.ts';
import { resolveProfile } from '../workload/profiles.ts';
import { Prng } from '../workload/prng.ts';
import type { Runtime } from '../runtime.ts';
import { ErrorCode, FlimcdError } from '../errors.ts';
import { modelledRuntime, mixId, TOKEN_BYTES } from './content-model.ts';
import { syntheticImage } from './image-model.ts';
import { SimDisk } from './sim-disk.ts';
import { SimVm } from './sim-vm.ts';
import { runVirtual } from './simulate.ts';
import { SharedWan } from './sim-wan.ts';
import { DEFAULT_LAN, SimLan, type LanModel } from './sim-lan.ts';
import { SimLocator, SimSiteContent } from './sim-locator.ts';

export interface SimFleetOptions {
  mode: 'fleet' | 'independent';
  vms: number;
  /** Target hosts (the store host is one more). */
  hosts: number;
  templates: number;
  /** Templates the store host holds (the first ones; default 1). */
  storedTemplates?: number;
  imageBytes: number;
  blockSize?: number;
  /** Share of each clone's blocks that are its own (default 0.1). */
  changed?: number;
  capBps: number;
  /** The WAN's round trip (default 10 ms). */
  rttMs?: number;
  /** Migrations at once (default all). */
  concurrency?: number;
  order?: OrderRule;
  lan?: LanModel;
  /** One Redis round trip (default 0.2 ms). */
  redisRttMs?: number;
  /** In-flight claims (mode fleet; default true). */
  claims?: boolean;
  /** A `light` workload per VM (default true). */
  workload?: boolean;
  seed?: number;
  /** Virtual time the VMs run before the fleet starts (default 10 s). */
  warmupMs?: number;
  /** Give up after this much virtual time (default 48 h). */
  limitMs?: number;
}

export interface SimFleetVmRow {
  name: string;
  host: string;
  template: number;
  order: number;
  started_s: number;
  finished_s: number;
  verified: boolean;
  wan_bytes: number;
  data_bytes: number;
  lan_blocks: number;
  downtime_ms: number;
}

export interface SimFleetResult {
  mode: SimFleetOptions['mode'];
  vms: SimFleetVmRow[];
  verified: number;
  /** Fleet start to the last migration's end, virtual seconds. */
  makespan_s: number;
  /** DATA bytes on the WAN (the reports' wire_bytes_breakdown.data). */
  wan_data_bytes: number;
  /** Every byte the fair-share link carried (source → target). */
  wan_bytes: number;
  bound_bytes: number;
  group_bytes: number;
  lan_blocks: number;
  lan_bytes: number;
  lan_fetches: number;
  locator: SimLocator['stats'] | null;
  claims: { claimed_wan: number; waited_for: number; waited_found: number; waited_gave_up: number } | null;
  events: number;
  wall_s: number;
}

const MAX_VMS = 10_000;

/** Template `t`'s modelled image (image-gen's mix: holes, repeats, text, random). */
function templateImage(size: number, bs: number, seed: number, t: number): SimDisk {
  return syntheticImage(size, bs, mixId(31, seed, t) % 1_000_000 + 1);
}

/** A clone: the template with `share` of its blocks (drawn at random) its own, of the same kind. */
export function cloneOf(template: SimDisk, share: number, seed: number): SimDisk {
  const image = new SimDisk(template.size, template.unit);
  image.copyFrom(template);
  const rng = new Prng(seed);
  const changed = new Set<number>();
  const want = Math.round(template.blocks * share);
  while (changed.size < want) changed.add(rng.int(template.blocks));
  for (const b of changed) {
    image.ids[b] = mixId(32, seed, b);
    image.zsizes[b] = template.ids[b] === 0 ? 0 : template.zsizes[b]!;
  }
  return image;
}

/** Bytes a block costs on the wire at its modelled zstd size (as the content model's codec sends it). */
function wireSize(disk: SimDisk, b: number): number {
  const z = disk.zsizes[b]!;
  const len = Math.min(disk.unit, disk.size - b * disk.unit);
  return z > 0 && z <= len ? Math.max(TOKEN_BYTES, z) : len;
}

interface SimFleetVm {
  name: string;
  host: string;
  template: number;
  priority: number;
  index: number;
  source: SimDisk;
  target: SimDisk;
  targetPath: string;
  runtime: Runtime;
  sourceDisks: SourceDisks;
  targetDisks: TargetDisks;
  engine: TargetEngine | undefined;
  vm: SimVm | undefined;
  row: SimFleetVmRow | undefined;
}

export async function simulateFleet(o: SimFleetOptions): Promise<SimFleetResult> {
  const wall0 = performance.now();
  const bs = o.blockSize ?? 64 * 1024;
  const n = o.vms;
  if (!Number.isInteger(n) || n < 1 || n > MAX_VMS) throw new RangeError(`fleet: vms must be 1 to ${MAX_VMS} (got ${n})`);
  if (!Number.isInteger(o.hosts) || o.hosts < 1) throw new RangeError(`fleet: hosts must be at least 1 (got ${o.hosts})`);
  if (!Number.isInteger(o.templates) || o.templates < 1 || o.templates > n) throw new RangeError(`fleet: templates must be 1 to vms (got ${o.templates})`);
  if (o.imageBytes % bs !== 0 || o.imageBytes <= 0) throw new RangeError(`fleet: image size must be a positive whole number of ${bs}-byte blocks`);
  const seed = o.seed ?? 1;
  const fleet = o.mode === 'fleet';
  const concurrency = Math.max(1, Math.min(o.concurrency ?? n, n));
  const clock = new VirtualClock();
  const quiet = rootLog.child({ sim: 'fleet' });
  quiet.level = 'silent';
  const features = resolveFeatures('flimcd');
  const wan = new SharedWan(clock, o.capBps, o.rttMs ?? 10);
  const lan = new SimLan(clock, o.lan ?? DEFAULT_LAN);
  const locator = new SimLocator(clock);
  const templates = Array.from({ length: o.templates }, (_, t) => templateImage(o.imageBytes, bs, seed, t));

  // The store host: the first templates, indexed and published before the run (`flimcd index add --cluster`).
  const stored = Math.min(o.storedTemplates ?? 1, o.templates);
  const held = new Set<number>();
  for (let t = 0; t < stored; t++) {
    const tpl = templates[t]!;
    for (let b = 0; b < tpl.blocks; b++) if (tpl.ids[b] !== 0) held.add(tpl.ids[b]!);
    if (!fleet) continue;
    const path = `/sim/store/template-${t}.img`;
    locator.addFile(path, tpl);
    const index = new MemoryReplicaIndex();
    const runtime = modelledRuntime(clock);
    await indexDisk(index, path, tpl, bs, runtime.content);
    const entries: Array<{ id: Uint8Array; offset: number }> = [];
    const buf = Buffer.alloc(bs);
    for (let b = 0; b < tpl.blocks; b++) {
      if (tpl.ids[b] === 0) continue;
      await tpl.read(b * bs, buf);
      entries.push({ id: runtime.content.id(buf), offset: b * bs });
    }
    locator.publish(bs, { host: 'store', owner: 'store', path }, entries);
  }

  // One replica index per target host (fleet mode): what its targets received.
  const hostIndex = new Map<string, MemoryReplicaIndex>();
  const vms: SimFleetVm[] = Array.from({ length: n }, (_, i) => {
    const template = i % o.templates;
    const host = `h${i % o.hosts}`;
    const name = `vm${i}`;
    const source = cloneOf(templates[template]!, o.changed ?? 0.1, mixId(33, seed, i));
    const target = new SimDisk(o.imageBytes, bs);
    const runtime = modelledRuntime(clock);
    const v: SimFleetVm = {
      name, host, template, priority: template === 0 ? 1 : 2, index: i, source, target, targetPath: `/sim/${host}/${name}.img`, runtime,
      sourceDisks: buildSourceDisks({ runtime, image: source, blockSize: bs }),
      targetDisks: undefined as unknown as TargetDisks, engine: undefined, vm: undefined, row: undefined,
    };
    v.targetDisks = buildTargetDisks({ runtime, image: target, blockSize: bs, engine: () => v.engine });
    if (fleet) locator.addFile(v.targetPath, target);
    if (o.workload !== false) {
      const params = resolveProfile('light', { linkBitsPerSecond: 8e6, imageBytes: o.imageBytes, blockSize: bs }).params;
      v.vm = new SimVm({ clock, source: v.sourceDisks.gate, target: v.targetDisks.gate, requests: new RequestGenerator(params, 7 + i) });
    }
    return v;
  });

  const planVms: FleetVm[] = vms.map((v) => ({
    name: v.name, image: { kind: 'file', path: `/sim/source/${v.name}.img`, format: 'raw' }, target: { kind: 'tcp', host: v.host, port: 0 }, nbd: undefined,
    priority: v.priority, deadlineMs: undefined, index: v.index,
  }));
  const order = orderVms(predict(planVms.map((vm, i) => ({ vm, dataBytes: vms[i]!.source.dataBlocks * bs })), o.capBps, concurrency), o.order ?? 'auto');
  const byName = new Map(vms.map((v) => [v.name, v]));
  const sites: SimSiteContent[] = [];
  let t0 = 0;

  const migrateOne = async (v: SimFleetVm, position: number): Promise<void> => {
    const { runtime } = v;
    const started = clock.now();
    let index: MemoryReplicaIndex;
    let site: SimSiteContent | undefined;
    if (fleet) {
      index = hostIndex.get(v.host) ?? new MemoryReplicaIndex();
      hostIndex.set(v.host, index);
      const hi = index;
      site = new SimSiteContent({
        locator, lan, clock, host: v.host, self: v.name, claims: o.claims !== false, redisRttMs: o.redisRttMs,
        imagePath: (no) => hi.list().find((im) => im.no === no)?.path,
      });
      sites.push(site);
    } else index = new MemoryReplicaIndex();
    const openReplica = async (path: string) => {
      const d = locator.file(path);
      if (!d) throw new FlimcdError(`simulation: no modelled replica file ${path}`, ErrorCode.SIM_REPLICA);
      return d;
    };
    const local = new LocalContent({ image: v.target, imagePath: v.targetPath, blockSize: bs, content: runtime.content, preexisting: false, index, openReplica, remote: site, log: quiet });
    const link = wan.connect(v.name, v.priority);
    const abortOnLoss = (e: Error | undefined, s: { engine: SourceEngine | TargetEngine }) => { if (e) s.engine.abort(e.message); };
    const src = buildSourceSession({
      runtime, disks: v.sourceDisks, channel: { onDisconnect: abortOnLoss },
      engine: { algorithm: 'flimcd', features, blockSize: bs, bandwidthBps: o.capBps / concurrency, log: quiet, targetHasReplicas: features.dedup && local.hasCandidates },
    });
    const tgt = buildTargetSession({ runtime, disks: v.targetDisks, channel: { onDisconnect: abortOnLoss }, engine: { log: quiet, features, local: features.dedup ? local : undefined } });
    v.engine = tgt.engine;
    src.channel.attach(link.source);
    tgt.channel.attach(link.target);
    v.vm?.migrationStarted();
    let report: MigrationReport | undefined;
    try {
      report = await src.engine.run();
      await tgt.engine.result;
    } finally {
      v.vm?.migrationEnded();
      await local.close();
      site?.close();
      src.channel.close();
      tgt.channel.close();
      await v.vm?.stop();
    }
    v.row = {
      name: v.name, host: v.host, template: v.template, order: position, started_s: (started - t0) / 1000, finished_s: (clock.now() - t0) / 1000,
      verified: report.verified, wan_bytes: link.flow.bytesSent, data_bytes: report.wire_bytes_breakdown.data, lan_blocks: report.from_lan.blocks, downtime_ms: report.downtime_ms,
    };
  };

  let events = 0;
  try {
    for (const v of vms) v.vm?.start();
    events += (await runVirtual(clock, sleep(clock, o.warmupMs ?? 10_000), o.limitMs ?? 48 * 3.6e6)).events;
    t0 = clock.now();
    const queue = order.map((p, i) => ({ v: byName.get(p.vm.name)!, position: i }));
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await migrateOne(next.v, next.position);
    };
    const all = Promise.all(Array.from({ length: concurrency }, worker));
    events += (await runVirtual(clock, all, o.limitMs ?? 48 * 3.6e6)).events;
  } finally {
    wan.close();
    locator.close();
  }

  const rows = vms.map((v) => v.row!).sort((a, b) => a.order - b.order);
  // The bound: distinct content of the sources as migrated that the store host did not hold.
  const unique = new Map<number, number>();
  for (const v of vms) {
    for (let b = 0; b < v.source.blocks; b++) {
      const id = v.source.ids[b]!;
      if (id !== 0 && !held.has(id) && !unique.has(id)) unique.set(id, wireSize(v.source, b));
    }
  }
  const sum = (f: (r: SimFleetVmRow) => number) => rows.reduce((s, r) => s + f(r), 0);
  return {
    mode: o.mode,
    vms: rows,
    verified: rows.filter((r) => r.verified).length,
    makespan_s: Math.max(0, ...rows.map((r) => r.finished_s)),
    wan_data_bytes: sum((r) => r.data_bytes),
    wan_bytes: sum((r) => r.wan_bytes),
    bound_bytes: [...unique.values()].reduce((s, x) => s + x, 0),
    group_bytes: n * o.imageBytes,
    lan_blocks: sum((r) => r.lan_blocks),
    lan_bytes: lan.stats.bytes,
    lan_fetches: lan.stats.fetches,
    locator: fleet ? { ...locator.stats } : null,
    claims: fleet ? {
      claimed_wan: sites.reduce((s, x) => s + x.stats.claimedWan, 0), waited_for: sites.reduce((s, x) => s + x.stats.waitedFor, 0),
      waited_found: sites.reduce((s, x) => s + x.stats.waitedFound, 0), waited_gave_up: sites.reduce((s, x) => s + x.stats.waitedGaveUp, 0),
    } : null,
    events,
    wall_s: (performance.now() - wall0) / 1000,
  };
}
