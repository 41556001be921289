// The datacenter-wide locator end to end: real agents over the WAN emulator, a
// real 3-master Redis Cluster, and a sibling host's replica server. A block a
// sibling holds crosses the LAN, not the WAN; a stale entry, a replica server
// killed and a Redis node killed mid-run all end verified and byte-exact.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { startAgentPair } from '../helpers/agent-pair.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { Prng } from '../../src/workload/prng.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { ReplicaServer } from '../../src/locator/replica-server.ts';
import { ReplicaClient } from '../../src/locator/replica-client.ts';
import { RedisLocator } from '../../src/locator/redis-locator.ts';
import { FleetContent } from '../../src/locator/fleet-content.ts';
import { publishIndexedImage } from '../../src/locator/publish-index.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { ephemeralPsk } from '../../src/wire/secure-link.ts';
import { formatAddress } from '../../src/util/address.ts';
import { realClock } from '../../src/util/clock.ts';
import { contentId, DEFAULT_CONTENT_ID_FORMAT } from '../../src/content/content-id.ts';
import { log } from '../../src/util/log.ts';

const BS = 16384;
const SIZE = 32 << 20;
const BLOCKS = SIZE / BS;
const quiet = log.child({ test: 'lan-fetch' });

/** Random blocks (incompressible, none zero). */
function randomImage(seed: number): Buffer {
  const b = Buffer.allocUnsafe(SIZE);
  new Prng(seed).fill(b);
  return b;
}

/** A clone of `template` with `share` of its blocks changed. */
function clone(template: Buffer, share: number, seed: number): { image: Buffer; changed: Set<number> } {
  const image = Buffer.from(template);
  const rng = new Prng(seed);
  const changed = new Set<number>();
  while (changed.size < Math.round(BLOCKS * share)) changed.add(rng.int(BLOCKS));
  for (const b of changed) rng.fill(image.subarray(b * BS, (b + 1) * BS));
  return { image, changed };
}

/**
 * Host B (a sibling) holds the template in its replica index and serves it
 * through a replica server behind a LAN link; host A runs the target agent,
 * which knows B only through the locator. The VM is the template with a
 * quarter of its blocks changed.
 */
async function fleet(t: TestContext, o: { wanBps: number; lanBps: number }) {
  const rc = await startRedisCluster(t);
  if (!rc) return undefined;
  const dir = tempDir(t);
  const template = randomImage(1);
  const templatePath = join(dir, 'template.img');
  writeFileSync(templatePath, template);
  const { image, changed } = clone(template, 0.25, 2);
  const vmPath = join(dir, 'vm.img');
  writeFileSync(vmPath, image);
  const security = ephemeralPsk();
  const indexB = ReplicaIndex.open(join(dir, 'index-b'));
  t.after(() => indexB.close());
  await indexImage(indexB, templatePath, BS);
  const server = new ReplicaServer({ index: indexB, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, security, log: quiet });
  t.after(() => server.close());
  const lan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: await server.listen(), bandwidthBps: o.lanBps, rttMs: 1 });
  t.after(() => lan.close());
  const hostB = formatAddress(await lan.listen());
  const locator = new RedisLocator({ urls: rc.urls, idFormat: DEFAULT_CONTENT_ID_FORMAT, clock: realClock, log: quiet, commandTimeoutMs: 500 });
  t.after(() => locator.close());
  const published = await publishIndexedImage(locator, indexB, indexB.image(templatePath)!, hostB);
  assert.equal(published.published, BLOCKS);
  const client = new ReplicaClient({ security, clock: realClock, log: quiet, requestTimeoutMs: 3000 });
  t.after(() => client.close());
  const hostA = 'tcp:127.0.0.1:7999';
  const remote = new FleetContent({ locator, client, selfAddress: hostA, log: quiet });
  const pair = await startAgentPair({
    dir, sourceImage: vmPath, algorithm: 'flimcd', bandwidthBps: o.wanBps, rttMs: 10, blockSize: BS, security,
    target: { remote, indexDir: join(dir, 'index-a') },
  });
  t.after(() => pair.close());
  const lanBlocks = () => ((pair.target.status().dedup as { local?: { lan?: number } } | undefined)?.local?.lan ?? 0);
  return { rc, pair, server, lan, locator, client, image, template, templatePath, changed, hostA, hostB, lanBlocks };
}

const wanForwardBytes = (f: { pair: { wan: WanProxy } }) => f.pair.wan.stats().forward.bytesOut;

test('blocks a sibling host holds cross the LAN, not the WAN; the target publishes what it received', async (t) => {
  const f = await fleet(t, { wanBps: 100e6, lanBps: 1e9 });
  if (!f) return;
  const report = await f.pair.source.migrate();
  await f.pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(f.pair.imagesEqual(), 'target byte-exact');
  const unchanged = BLOCKS - f.changed.size;
  assert.equal(report.from_lan.blocks, unchanged, 'every block the sibling holds came over the LAN');
  assert.equal(report.from_lan.bytes, unchanged * BS);
  assert.equal(report.blocks.sent_data, f.changed.size, 'only the changed blocks travel as data');
  // The WAN emulator's own count: the changed blocks plus offers and control, far from the whole image.
  const wan = wanForwardBytes(f);
  const changedBytes = f.changed.size * BS;
  assert.ok(wan > changedBytes && wan < changedBytes * 1.05 + 128 * 1024, `WAN bytes ${wan} for ${changedBytes} changed bytes`);
  // What the target received it recorded in its index and published under its own address.
  await f.pair.close();
  await f.locator.flush();
  const someChanged = [...f.changed].slice(0, 32).map((b) => contentId(f.image.subarray(b * BS, (b + 1) * BS)));
  const hits = await f.locator.lookup(BS, someChanged);
  assert.ok(hits.every((h) => h?.hostAddress === f.hostA), 'received blocks are published as held by the target host');
});

test('a stale locator entry (the sibling\'s file changed) is caught by the re-hash; those blocks cross the WAN', async (t) => {
  const f = await fleet(t, { wanBps: 100e6, lanBps: 1e9 });
  if (!f) return;
  // Overwrite 40 unchanged blocks of the template on host B after it was indexed and published.
  const unchanged = [...Array(BLOCKS).keys()].filter((b) => !f.changed.has(b));
  const spoiled = unchanged.slice(0, 40);
  const fd = openSync(f.templatePath, 'r+');
  const rng = new Prng(9);
  for (const b of spoiled) {
    const junk = Buffer.allocUnsafe(BS);
    rng.fill(junk);
    writeSync(fd, junk, 0, BS, b * BS);
  }
  closeSync(fd);
  const report = await f.pair.source.migrate();
  await f.pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(f.pair.imagesEqual(), 'target byte-exact');
  const local = (report.dedup.target as { local: { lanStale: number } }).local;
  assert.equal(local.lanStale, spoiled.length, 'every stale block was rejected by its hash');
  assert.equal(report.from_lan.blocks, unchanged.length - spoiled.length);
  assert.equal(report.blocks.sent_data, f.changed.size + spoiled.length, 'the stale ones came from the source');
  assert.ok(f.locator.stats.forgotten >= spoiled.length, 'stale entries are dropped from the locator');
});

test('a replica server killed mid-run: the rest crosses the WAN, verified and byte-exact', async (t) => {
  const f = await fleet(t, { wanBps: 20e6, lanBps: 40e6 });
  if (!f) return;
  const running = f.pair.source.migrate();
  running.catch(() => {});
  await until(() => f.lanBlocks() >= 20, 60_000, 'no LAN fetch');
  await f.server.close();
  await f.lan.close();
  const report = await running;
  await f.pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(f.pair.imagesEqual(), 'target byte-exact');
  const unchanged = BLOCKS - f.changed.size;
  assert.ok(report.from_lan.blocks >= 20 && report.from_lan.blocks < unchanged, `from_lan ${report.from_lan.blocks}`);
  assert.equal(report.blocks.sent_data, BLOCKS - report.from_lan.blocks, 'what the LAN did not bring, the WAN did');
});

test('a Redis node killed mid-run: lookups fail over to the WAN, verified and byte-exact', async (t) => {
  const f = await fleet(t, { wanBps: 20e6, lanBps: 1e9 });
  if (!f) return;
  // The node dies as the second lookup batch is asked (after the first was answered): on a fast machine
  // every lookup is answered before a poll for the first LAN block would see it, and nothing is left to fail.
  const lookup = f.locator.lookup.bind(f.locator);
  let first: ReturnType<typeof lookup> | undefined;
  f.locator.lookup = async (blockSize, ids) => {
    if (!first) return (first = lookup(blockSize, ids));
    await first.then(() => f.rc.kill(0));
    return lookup(blockSize, ids);
  };
  const report = await f.pair.source.migrate();
  await f.pair.target.result();
  assert.equal(report.verified, true);
  assert.ok(f.pair.imagesEqual(), 'target byte-exact');
  const unchanged = BLOCKS - f.changed.size;
  assert.ok(report.from_lan.blocks > 0 && report.from_lan.blocks < unchanged, `from_lan ${report.from_lan.blocks} of ${unchanged}`);
  assert.equal(report.blocks.sent_data, BLOCKS - report.from_lan.blocks, 'what the LAN did not bring, the WAN did');
  assert.ok(f.locator.stats.failures >= 1);
});
