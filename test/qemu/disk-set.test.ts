// DiskSet against fake agent control endpoints (real HTTP over unix sockets):
// statuses of every disk, convergence over all, one cut-over for all, abort of all,
// a disk's failure named; and the totals of several disks' statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';
import { DiskSet, checkDiskEndpoints, totalStatus, remainingBytes, type DiskEndpoints } from '../../src/qemu/disk-set.ts';

interface FakeAgent {
  status: Record<string, unknown>;
  posts: Array<{ url: string; body: unknown }>;
}

async function fakeAgent(t: TestCtx, path: string, status: Record<string, unknown>, refuseCutover = false): Promise<FakeAgent> {
  const a: FakeAgent = { status, posts: [] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST') a.posts.push({ url: req.url ?? '', body: body ? JSON.parse(body) : undefined });
      const refuse = refuseCutover && req.url === '/cutover';
      res.writeHead(refuse ? 409 : req.method === 'POST' ? 202 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(refuse ? { error: 'not now' } : req.method === 'POST' ? { accepted: true } : a.status));
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  return a;
}

async function twoDisks(t: TestCtx, o: { refuseVdbCutover?: boolean } = {}) {
  const dir = tempDir(t);
  const ep = (n: string): DiskEndpoints => ({ name: n, sourceControl: { kind: 'unix', path: join(dir, `${n}-s.ctl`) }, targetControl: { kind: 'unix', path: join(dir, `${n}-t.ctl`) } });
  const disks = [ep('vda'), ep('vdb')];
  const agents = {
    vdaS: await fakeAgent(t, join(dir, 'vda-s.ctl'), { phase: 'precopy', round: 1, remainingBlocks: 10, blockSize: 65536 }),
    vdaT: await fakeAgent(t, join(dir, 'vda-t.ctl'), { phase: 'precopy' }),
    vdbS: await fakeAgent(t, join(dir, 'vdb-s.ctl'), { phase: 'precopy', round: 0, remainingBlocks: 500, blockSize: 65536 }, o.refuseVdbCutover),
    vdbT: await fakeAgent(t, join(dir, 'vdb-t.ctl'), { phase: 'precopy' }),
  };
  return { set: new DiskSet(disks), agents };
}

test('pre-copy converges only when every disk finished its first pass and the dirty sets together are small', async (t) => {
  const { set, agents } = await twoDisks(t);
  let all = await set.sourceStatuses();
  assert.deepEqual(all.map((d) => d.name), ['vda', 'vdb']);
  assert.equal(remainingBytes(all), 510 * 65536);
  assert.equal(DiskSet.precopyConverged(all, 1 << 30), false, 'vdb is still in its first pass');
  agents.vdbS.status = { phase: 'precopy', round: 1, remainingBlocks: 100, blockSize: 65536 };
  all = await set.sourceStatuses();
  assert.equal(DiskSet.precopyConverged(all, 100 * 65536), false, 'together 110 blocks: more than the threshold');
  assert.equal(DiskSet.precopyConverged(all, 110 * 65536), true);
});

test('a disk whose agent failed or cannot be reached is named', async (t) => {
  const { set, agents } = await twoDisks(t);
  agents.vdbS.status = { phase: 'failed', error: 'disk full' };
  assert.throws(() => DiskSet.throwIfFailed([{ name: 'vda', status: agents.vdaS.status }, { name: 'vdb', status: agents.vdbS.status }], 'source', 'in pre-copy'), /disk vdb: the source agent reports the migration failed in pre-copy: disk full/);
  const gone = new DiskSet([set.disks[0]!, { ...set.disks[1]!, targetControl: { kind: 'unix', path: '/nonexistent/t.ctl' } }]);
  await assert.rejects(gone.targetStatuses(), /disk vdb: /);
});

test('cut-over is sent to every source agent; a refusal by one is reported with its name after all were asked', async (t) => {
  const ok = await twoDisks(t);
  await ok.set.cutover();
  assert.deepEqual([ok.agents.vdaS.posts.map((p) => p.url), ok.agents.vdbS.posts.map((p) => p.url)], [['/cutover'], ['/cutover']]);
  const refused = await twoDisks(t, { refuseVdbCutover: true });
  await assert.rejects(refused.set.cutover(), /storage cut-over refused: disk vdb: /);
  assert.equal(refused.agents.vdaS.posts.length, 1, 'vda was asked too');
});

test('rollback aborts every source agent (reclaiming its disk once handed over) and every target agent, even when one is gone', async (t) => {
  const { set, agents } = await twoDisks(t);
  const half = new DiskSet([set.disks[0]!, { ...set.disks[1]!, sourceControl: { kind: 'unix', path: '/nonexistent/s.ctl' } }]);
  const failed = await half.abortSources('VM migration failed', true);
  assert.equal(failed.length, 1);
  assert.match(failed[0]!, /^disk vdb: /);
  assert.deepEqual(agents.vdaS.posts, [{ url: '/abort', body: { reason: 'VM migration failed', reclaim: true } }]);
  assert.deepEqual(await set.abortTargets('VM migration failed'), []);
  assert.deepEqual([agents.vdaT.posts.length, agents.vdbT.posts.length], [1, 1]);
});

test('totals: counters summed, verified only when every disk verified, progress weighted by size; one disk is itself', () => {
  const a = { phase: 'done', verified: true, receivedBytes: 100, missingBlocks: 2, blocks: 100, blockSize: 65536, progress: 1 };
  const b = { phase: 'postcopy', verified: null, receivedBytes: 50, missingBlocks: 3, blocks: 300, blockSize: 65536, progress: 0.5 };
  const t = totalStatus([{ name: 'vda', status: a }, { name: 'vdb', status: b }]);
  assert.equal(t.receivedBytes, 150);
  assert.equal(t.missingBlocks, 5);
  assert.equal(t.blocks, 400);
  assert.equal(t.blockSize, 65536);
  assert.equal(t.phase, 'done/postcopy');
  assert.equal(t.verified, null);
  assert.equal(t.progress, (100 + 150) / 400);
  assert.equal(totalStatus([{ name: 'vda', status: { ...b, verified: true } }, { name: 'vdb', status: { ...a, verified: false } }]).verified, false);
  assert.equal(totalStatus([{ name: 'vda', status: a }]), a);
});

test('a set needs at least one disk, unique names and its own agents per disk', () => {
  const ep = (n: string, s: string, t: string): DiskEndpoints => ({ name: n, sourceControl: { kind: 'unix', path: s }, targetControl: { kind: 'unix', path: t } });
  assert.throws(() => checkDiskEndpoints([]), /no disks/);
  assert.throws(() => checkDiskEndpoints([ep('a', '/1', '/2'), ep('a', '/3', '/4')]), /two disks are named a/);
  assert.throws(() => checkDiskEndpoints([ep('a', '/1', '/2'), ep('b', '/1', '/4')]), /disk b: control endpoint unix:\/1 is given twice/);
  checkDiskEndpoints([ep('a', '/1', '/2'), ep('b', '/3', '/4')]);
});
