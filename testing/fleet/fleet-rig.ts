/**
 * Test and benchmark infrastructure, not product code: a fleet on one machine.
 * VMs cloned from templates (each with its own share of changed blocks and,
 * optionally, a checked `light` workload), migrated by one FleetRun to target
 * hosts on loopback (a target agent, index directory and replica server per
 * VM, hosts as directories) behind a delaying WAN emulator, through the
 * fleet's shared cap. A storage host of the destination holds template 0.
 *
 * mode `fleet`: targets use the Redis Cluster locator with in-flight claims.
 * mode `independent`: each target only its own index, the same VMs, all at
 * once through the same cap (independent flimcd migrations sharing the link).
 *
 * The bound: the distinct blocks of the sources as migrated (frozen at the
 * cut-over), less what the destination held, each zstd-compressed.
 */
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { compress } from 'zstd-napi';
import { Prng } from '../../src/workload/prng.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { ReplicaServer } from '../../src/locator/replica-server.ts';
import { ReplicaClient } from '../../src/locator/replica-client.ts';
import { RedisLocator } from '../../src/locator/redis-locator.ts';
import { ClaimStore } from '../../src/locator/claims.ts';
import { ClaimingContent } from '../../src/locator/claiming-content.ts';
import { publishIndexedImage } from '../../src/locator/publish-index.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { ephemeralPsk } from '../../src/wire/secure-link.ts';
import { formatAddress, type Address } from '../../src/util/address.ts';
import { realClock } from '../../src/util/clock.ts';
import { contentId, DEFAULT_CONTENT_ID_FORMAT } from '../../src/content/content-id.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { FileDisk } from '../../src/block/file.ts';
import { ExpectedDisk, finalVerify } from '../../src/workload/expected.ts';
import { WorkloadExecutor } from '../../src/workload/executor.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';
import { FleetRun, type FleetResult } from '../../src/fleet/fleet-run.ts';
import { parseFleetPlan } from '../../src/fleet/plan.ts';
import type { Disk } from '../../src/block/disk.ts';

export interface FleetRigOptions {
  dir: string;
  /** Seed URLs of a running Redis Cluster (mode `fleet`). */
  redisUrls: string[];
  mode: 'fleet' | 'independent';
  log: Logger;
  vms?: number;
  templates?: number;
  hosts?: number;
  imageBytes?: number;
  blockSize?: number;
  /** Share of each clone's blocks that are its own. */
  changed?: number;
  capBps?: number;
  rttMs?: number;
  /** A checked light workload per VM (default true). */
  workload?: boolean;
  /** Fault injection (tests): `prepared` once everything is up, before the run; `running` while it runs. */
  faults?: {
    prepared?: (h: FleetRigHandles) => void | Promise<void>;
    running?: (h: FleetRigHandles) => void | Promise<void>;
  };
}

/** What a fault injector can reach: the store and every VM's target, replica server and claims. */
export interface FleetRigHandles {
  locator: RedisLocator | undefined;
  security: ReturnType<typeof ephemeralPsk>;
  templates: Buffer[];
  blockSize: number;
  storeImage: string;
  storeServer: ReplicaServer | undefined;
  vms: Array<{ name: string; template: number; server: ReplicaServer | undefined; address: string | undefined; target: TargetAgent; claiming: ClaimingContent | undefined }>;
  /** Blocks every target so far took from a sibling host. */
  lanBlocks(): number;
}

export interface FleetRigResult {
  result: FleetResult;
  /** Distinct not-at-destination bytes, compressed. */
  bound: number;
  /** The group's size: every VM's allocated bytes. */
  groupBytes: number;
  /** DATA bytes on the WAN (the reports' wire_bytes_breakdown.data). */
  wanData: number;
  lanBlocks: number;
  /** Blocks that could come from elsewhere than the WAN, about. */
  shareableBlocks: number;
  /** Workload mismatches over all VMs (reads during the run, and the final read of every target). */
  mismatches: number;
  claims: Array<ClaimingContent['stats']>;
  /** Each VM's claim store: claimed, abandoned, presumed lost, released. */
  claimStores: Array<ClaimStore['stats']>;
  makespanS: number;
}

/** Random blocks whose first quarter is spaces, so zstd has some work. */
function templateImage(seed: number, size: number, bs: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  new Prng(seed).fill(b);
  for (let o = 0; o < size; o += bs) b.fill(0x20, o, o + bs / 4);
  return b;
}

function cloneImage(template: Buffer, bs: number, share: number, seed: number): Buffer {
  const image = Buffer.from(template);
  const blocks = template.length / bs;
  const rng = new Prng(seed);
  const changed = new Set<number>();
  while (changed.size < Math.round(blocks * share)) changed.add(rng.int(blocks));
  for (const b of changed) rng.fill(image.subarray(b * bs + bs / 4, (b + 1) * bs));
  return image;
}

export async function runFleetRig(o: FleetRigOptions): Promise<FleetRigResult> {
  const n = o.vms ?? 6;
  const nt = o.templates ?? 2;
  const nh = o.hosts ?? 2;
  const size = o.imageBytes ?? 16 << 20;
  const bs = o.blockSize ?? 64 * 1024;
  const blocks = size / bs;
  const share = o.changed ?? 0.1;
  const quiet = o.log;
  const closers: Array<() => unknown> = [];
  const security = ephemeralPsk();
  try {
    const templates = Array.from({ length: nt }, (_, i) => templateImage(1 + i, size, bs));
    const fleet = o.mode === 'fleet';
    const locator = fleet ? new RedisLocator({ urls: o.redisUrls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet, commandTimeoutMs: 1000 }) : undefined;
    if (locator) closers.push(() => locator.close());
    const client = new ReplicaClient({ security, clock: realClock, log: quiet, requestTimeoutMs: 5000 });
    closers.push(() => client.close());

    // The destination's storage host holds template 0.
    const storeDir = join(o.dir, 'store');
    mkdirSync(storeDir, { recursive: true });
    const storeImage = join(storeDir, 'template-0.img');
    writeFileSync(storeImage, templates[0]!);
    let storeServer: ReplicaServer | undefined;
    if (locator) {
      const storeIndex = ReplicaIndex.open(join(storeDir, 'index'));
      closers.push(() => storeIndex.close());
      await indexImage(storeIndex, storeImage, bs);
      const server = new ReplicaServer({ index: storeIndex, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, security, log: quiet });
      storeServer = server;
      closers.push(() => server.close());
      const storeAddr = formatAddress(await server.listen());
      await publishIndexedImage(locator, storeIndex, storeIndex.image(storeImage)!, storeAddr);
      await locator.flush();
    }

    const vms = Array.from({ length: n }, (_, i) => ({ name: `vm${i}`, path: join(o.dir, `vm${i}.img`), host: `h${i % nh}`, template: i % nt }));
    for (const [i, vm] of vms.entries()) writeFileSync(vm.path, cloneImage(templates[vm.template]!, bs, share, 100 + i));

    const targets = new Map<string, TargetAgent>();
    const claiming: ClaimingContent[] = [];
    const stores: ClaimStore[] = [];
    const planVms: string[] = [];
    const handles: FleetRigHandles = { locator, security, templates, blockSize: bs, storeImage, storeServer, vms: [], lanBlocks: () => 0 };
    for (const vm of vms) {
      const hostDir = join(o.dir, vm.host);
      mkdirSync(hostDir, { recursive: true });
      // No dot in an LMDB directory's name: lmdb-js would take it for a file.
      const indexDir = join(hostDir, `${vm.name}-index`);
      let remote: ClaimingContent | undefined;
      let server: ReplicaServer | undefined;
      let self: string | undefined;
      if (locator) {
        const index = ReplicaIndex.open(indexDir);
        closers.push(() => index.close());
        const srv = new ReplicaServer({ index, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, security, log: quiet });
        server = srv;
        closers.push(() => srv.close());
        self = formatAddress(await srv.listen());
        const claims = new ClaimStore({
          cluster: locator.client, idFormat: DEFAULT_CONTENT_ID_FORMAT, holder: self, clock: realClock, log: quiet, onFailure: (e, what) => locator.unavailable(e, what),
        });
        stores.push(claims);
        remote = new ClaimingContent({ locator, client, claims, selfAddress: self, clock: realClock, log: quiet });
        const r = remote;
        closers.push(() => r.close());
        claiming.push(remote);
      }
      const target = new TargetAgent({
        image: join(hostDir, `${vm.name}.img`), security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(hostDir, `${vm.name}.sock`) },
        indexDir, remote, log: quiet.child({ agent: vm.name }),
      });
      closers.push(() => target.close());
      targets.set(vm.name, target);
      handles.vms.push({ name: vm.name, template: vm.template, server, address: self, target, claiming: remote });
      const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: await target.listen(), bandwidthBps: 10e9, rttMs: o.rttMs ?? 10 });
      closers.push(() => wan.close());
      planVms.push(`  - name: ${vm.name}\n    image: ${vm.path}\n    target: ${formatAddress(await wan.listen())}\n    priority: ${vm.template === 0 ? 1 : 2}`);
    }
    const plan = parseFleetPlan(`concurrency: ${n}\nwan_cap: ${Math.round((o.capBps ?? 80e6) / 1e6)}Mbit\nblock_size: ${bs / 1024}KiB\nvms:\n${planVms.join('\n')}\n`, 'rig.yaml');

    const running = new Map<string, { exec: WorkloadExecutor; expected: ExpectedDisk; done: Promise<unknown>; opened: Disk[]; targetImage: string }>();
    const run = new FleetRun({
      plan, security, dir: o.dir, log: quiet,
      onServing: async (vm, nbd: Address) => {
        if (o.workload === false) return;
        const i = Number(vm.name.slice(2));
        const primary = await NbdClient.connect(nbd);
        const opened: Disk[] = [primary];
        const expected = await ExpectedDisk.create(size, 7 + i, { base: vms[i]!.path });
        const exec = new WorkloadExecutor({
          disk: primary,
          switchTo: async () => {
            const d = await NbdClient.connect(targets.get(vm.name)!.nbdAddress!);
            opened.push(d);
            return d;
          },
          requests: new RequestGenerator(resolveProfile('light', { linkBitsPerSecond: 8e6, imageBytes: size, blockSize: bs }).params, 7 + i),
          durationMs: 3600_000, expected, blockSize: bs,
        });
        running.set(vm.name, { exec, expected, done: exec.run(), opened, targetImage: join(o.dir, vms[i]!.host, `${vm.name}.img`) });
      },
      onFinished: async (vm) => {
        const r = running.get(vm.name);
        if (!r) return;
        r.exec.stop();
        await r.done;
      },
    });
    // Torn down first: a sibling's replica server closing under a live connection is no fault to warn about.
    closers.push(() => client.close());
    handles.lanBlocks = () => [...targets.values()].reduce((s, tg) => s + ((tg.status().dedup as { local?: { lan?: number } } | undefined)?.local?.lan ?? 0), 0);
    await o.faults?.prepared?.(handles);
    const fleetRun = run.run();
    await Promise.all([fleetRun, o.faults?.running?.(handles)]);
    const result = await fleetRun;
    for (const tg of targets.values()) await tg.result().catch(() => {});

    let mismatches = 0;
    for (const r of running.values()) {
      // The target image as the finished agent left it: a workload that issued no request after its
      // VM's cut-over never switched to the target, and its source export is closed by now.
      const image = await FileDisk.open(r.targetImage, { readOnly: true });
      const fin = await finalVerify(image, r.expected, { queueDepth: 8 }).finally(() => image.close());
      mismatches += fin.mismatches + r.expected.stats.mismatches;
      for (const d of r.opened) await d.close().catch(() => {});
      await r.expected.close();
    }

    const key = (b: Buffer) => contentId(b).toString('hex');
    const held = new Set<string>();
    for (let b = 0; b < blocks; b++) held.add(key(templates[0]!.subarray(b * bs, (b + 1) * bs)));
    const unique = new Map<string, number>();
    let groupBytes = 0;
    for (const vm of vms) {
      const img = readFileSync(vm.path);
      groupBytes += img.length;
      for (let b = 0; b < blocks; b++) {
        const blk = img.subarray(b * bs, (b + 1) * bs);
        const k = key(blk);
        if (!held.has(k) && !unique.has(k) && !blk.every((x) => x === 0)) unique.set(k, Math.min(bs, compress(blk).length));
      }
    }
    const perTemplate = Array.from({ length: nt }, (_, t) => vms.filter((v) => v.template === t).length);
    const unchanged = Math.round(blocks * (1 - share));
    // Template 0's clones all find their unchanged blocks at the store; each other template's first clone must take them over the WAN.
    const shareableBlocks = unchanged * perTemplate.reduce((s, c, t) => s + (t === 0 ? c : Math.max(0, c - 1)), 0);
    return {
      result,
      bound: [...unique.values()].reduce((s, x) => s + x, 0),
      groupBytes,
      wanData: result.rows.reduce((s, r) => s + (r.report?.wire_bytes_breakdown.data ?? 0), 0),
      lanBlocks: result.totals.from_lan_blocks,
      shareableBlocks,
      mismatches,
      claims: claiming.map((c) => ({ ...c.stats })),
      claimStores: stores.map((c) => ({ ...c.stats })),
      makespanS: result.totals.elapsed_s,
    };
  } finally {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
  }
}
