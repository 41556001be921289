// The content locator against a real three-master Redis Cluster started here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { RedisLocator, parseClusterUrls } from '../../src/locator/redis-locator.ts';
import { bucketKey } from '../../src/locator/locator-keys.ts';
import { realClock } from '../../src/util/clock.ts';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { UsageError } from '../../src/errors.ts';

const BS = 65536;

/** A logger that keeps its lines, to count warnings. */
function recordingLog() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); } });
  return { log: pino({ level: 'debug' }, stream), warnings: () => lines.filter((l) => l.level === 40) };
}

test('seed URLs must be redis://HOST:PORT', () => {
  assert.deepEqual(parseClusterUrls('redis://127.0.0.1:7000,redis://[::1]:7001'), [{ host: '127.0.0.1', port: 7000 }, { host: '::1', port: 7001 }]);
  assert.throws(() => parseClusterUrls('127.0.0.1:7000'), UsageError);
  assert.throws(() => parseClusterUrls('redis://h:0'), UsageError);
});

test('published ids are found in one batch, per block size and id format, and forgotten entries are gone', async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const { log, warnings } = recordingLog();
  const loc = new RedisLocator({ urls: rc.urls, idFormat: 'blake3', clock: realClock, log });
  t.after(() => loc.close());
  const other = new RedisLocator({ urls: rc.urls.slice(1), idFormat: 'sha256', clock: realClock, log });
  t.after(() => other.close());
  const hostA = await loc.registerHost('tcp:10.0.0.1:7100');
  const hostB = await other.registerHost('tcp:10.0.0.2:7100');
  assert.notEqual(hostA, hostB);
  assert.equal(await loc.registerHost('tcp:10.0.0.1:7100'), hostA, 'a host keeps its number');
  const ids = Array.from({ length: 512 }, () => randomBytes(32));
  loc.publish(BS, hostA, 3, ids.slice(0, 400).map((id, i) => ({ id, block: i * 7 + 2 ** 33 })));
  await loc.flush();
  assert.equal(loc.stats.published, 400);
  const hits = await loc.lookup(BS, ids);
  for (let i = 0; i < 512; i++) {
    if (i < 400) assert.deepEqual(hits[i], { entry: { host: hostA, image: 3, block: i * 7 + 2 ** 33 }, hostAddress: 'tcp:10.0.0.1:7100' });
    else assert.equal(hits[i], undefined);
  }
  // Another block size or id format never matches these entries.
  assert.ok((await loc.lookup(4096, ids)).every((h) => h === undefined));
  assert.ok((await other.lookup(BS, ids)).every((h) => h === undefined));
  // A batch touches at most 256 slots (the hashtag is the id's first byte).
  const slots = new Set(ids.map((id) => bucketKey('blake3', BS, id, 16).match(/\{(..)\}/)![1]));
  assert.ok(slots.size <= 256);
  await loc.forget(BS, ids[0]!);
  assert.equal((await loc.lookup(BS, [ids[0]!]))[0], undefined);
  assert.equal(warnings().length, 0);
});

test('with the cluster gone, lookups answer "nowhere" at once, publishing drops, and one warning is logged', async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const { log, warnings } = recordingLog();
  const loc = new RedisLocator({ urls: rc.urls, idFormat: 'blake3', clock: realClock, log, commandTimeoutMs: 300, retryAfterMs: 60_000 });
  t.after(() => loc.close());
  const host = await loc.registerHost('tcp:10.0.0.3:7100');
  const ids = Array.from({ length: 64 }, () => randomBytes(32));
  loc.publish(BS, host, 1, ids.map((id, i) => ({ id, block: i })));
  await loc.flush();
  for (let i = 0; i < 3; i++) await rc.kill(i);
  const first = await loc.lookup(BS, ids);
  assert.ok(first.every((h) => h === undefined));
  for (let i = 0; i < 5; i++) assert.ok((await loc.lookup(BS, ids)).every((h) => h === undefined));
  loc.publish(BS, host, 1, ids.map((id, i) => ({ id, block: i })));
  await loc.flush();
  assert.equal(loc.stats.droppedEntries, 64);
  assert.equal(warnings().length, 1, 'one warning, not one per lookup');
  assert.equal(loc.stats.failures, 1, 'the cluster is skipped after a failure, not asked again at once');
});

test('entries cost a few tens of bytes each in Redis (listpack buckets)', async (t) => {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const { log } = recordingLog();
  // About 50 entries per bucket: 2^10 buckets for 5e4 entries.
  const loc = new RedisLocator({ urls: rc.urls, idFormat: 'blake3', clock: realClock, log, bucketBits: 10 });
  t.after(() => loc.close());
  const used = async () => {
    let sum = 0;
    for (let i = 0; i < 3; i++) sum += Number(/used_memory:(\d+)/.exec(await rc.cli(i, 'info', 'memory'))![1]);
    return sum;
  };
  const before = await used();
  const n = 50_000;
  for (let done = 0; done < n; done += 10_000) {
    loc.publish(BS, 1, 1, Array.from({ length: 10_000 }, (_, i) => ({ id: randomBytes(16), block: done + i })));
    await loc.flush();
  }
  assert.equal(loc.stats.published, n);
  const perEntry = ((await used()) - before) / n;
  t.diagnostic(`${perEntry.toFixed(1)} bytes per entry at ${n} entries`);
  assert.ok(perEntry < 40, `${perEntry} bytes per entry`);
});

test('a master failing over: lookups answer "nowhere" meanwhile, then find the entries on the promoted replica', async (t) => {
  const rc = await startRedisCluster(t, { replicas: true });
  if (!rc) return;
  const { log, warnings } = recordingLog();
  const loc = new RedisLocator({ urls: rc.urls, idFormat: 'blake3', clock: realClock, log, commandTimeoutMs: 500, retryAfterMs: 200 });
  t.after(() => loc.close());
  const host = await loc.registerHost('tcp:10.0.0.4:7100');
  const ids = Array.from({ length: 256 }, () => randomBytes(32));
  loc.publish(BS, host, 2, ids.map((id, i) => ({ id, block: i })));
  await loc.flush();
  assert.match(await rc.cli(0, 'role'), /^master/);
  // The replicas have every write before the master dies.
  await rc.replicated(0);
  await rc.kill(0);
  // Until a replica takes over (node timeout 2 s), some lookups fail; none throws and none hangs.
  let found = 0;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const hits = await loc.lookup(BS, ids);
    found = hits.filter((h) => h?.entry.image === 2).length;
    if (found === ids.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(found, ids.length, 'every entry found again after the fail-over');
  assert.ok(loc.stats.failures >= 1, 'the fail-over was seen as a failure');
  assert.equal(warnings().length, 1, 'one warning for the whole outage');
});
