// A replica index is keyed by block size: one built at another size finds
// nothing for a migration. The target (at start and when a migration begins)
// and `plan` say so, with the command that re-indexes; `index add --reindex`
// does it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { indexBlockSizeProblem } from '../../src/replica-index/block-size-check.ts';
import { ReplicaIndex, type IndexedImage } from '../../src/replica-index/replica-index.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

const image = (blockSize: number): IndexedImage => ({ path: '/images/base.img', no: 1, size: 1 << 30, blockSize, blocks: 10, addedAt: '', kind: 'registered' });

test('an index holding only other block sizes is a problem named in KiB, with the re-index command', () => {
  assert.equal(indexBlockSizeProblem([], 65536, '/ix'), undefined, 'an empty index is no mismatch');
  assert.equal(indexBlockSizeProblem([image(4096), image(65536)], 65536, '/ix'), undefined);
  assert.equal(
    indexBlockSizeProblem([image(4096)], 65536, '/ix'),
    'index uses 4 KiB blocks, this migration 64 KiB: it cannot be used; re-index it at this size with `flimcd index add --index /ix --reindex --block-size 64KiB`',
  );
  assert.match(indexBlockSizeProblem([image(65536)], 1 << 20, '/ix')!, /index uses 64 KiB blocks, this migration 1 MiB/);
});

test('plan refuses an index of another block size (exit 2); index add --reindex re-indexes it at the asked size', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'base.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 5));
  const ix = join(dir, 'ix');
  assert.equal((await flimcd(['index', 'add', '--index', ix, '--block-size', '4KiB', img])).code, 0);
  const plan = await flimcd(['plan', '--image', img, '--workload', 'light', '--index', ix]);
  assert.equal(plan.code, 2, plan.stderr);
  assert.match(plan.stderr, /index uses 4 KiB blocks, this migration 64 KiB: it cannot be used; re-index it at this size with `flimcd index add --index .* --reindex --block-size 64KiB`/);
  const re = await flimcd(['index', 'add', '--index', ix, '--reindex', '--block-size', '64KiB', '--json']);
  assert.equal(re.code, 0, re.stderr);
  assert.equal(JSON.parse(re.stdout.trim()).blockSize, 65536);
  const ls = JSON.parse((await flimcd(['index', 'ls', '--index', ix, '--json'])).stdout) as IndexedImage[];
  assert.deepEqual(ls.map((im) => [im.path, im.blockSize]), [[img, 65536]]);
  const after = await flimcd(['plan', '--image', img, '--workload', 'light', '--bandwidth', '1Mbit', '--index', ix, '--json']);
  assert.equal(after.code, 0, after.stderr);
});

test('the target reports its index\'s block sizes at start', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'base.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 5));
  const ix = join(dir, 'ix');
  assert.equal((await flimcd(['index', 'add', '--index', ix, '--block-size', '4KiB', img])).code, 0);
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } }));
  const target = new TargetAgent({ image: join(dir, 'vm.img'), security: { mode: 'insecure' }, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, 't.sock') }, indexDir: ix, log });
  t.after(() => target.close());
  await target.listen();
  const report = lines.find((l) => /replica index/.test(String(l.msg)));
  assert.ok(report, JSON.stringify(lines));
  assert.match(String(report.msg), /1 image in 4 KiB blocks/);
  assert.deepEqual(report.blockSizes, [4096]);
  await ReplicaIndex.open(ix, { readOnly: true }).close();
});
