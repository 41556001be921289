// A replica index records how each image's content was named: an index of
// another format (or from before formats were named: BLAKE3) is a problem the
// target and plan name with the command that re-indexes; `index add --reindex
// --content-hash` does it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { indexContentIdProblem } from '../../src/replica-index/content-id-check.ts';
import { ReplicaIndex, type IndexedImage } from '../../src/replica-index/replica-index.ts';
import { MemoryReplicaIndex } from '../../src/replica-index/memory-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { blake3, realContentModel, sha256 } from '../../src/content/content-id.ts';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

const image = (contentIds: string | undefined, no = 1): IndexedImage => ({ path: `/images/${no}.img`, no, size: 1 << 30, blockSize: 65536, blocks: 10, addedAt: '', kind: 'registered', ...(contentIds ? { contentIds } : {}) });

test('images of another format, or of none (older indexes: BLAKE3), are named with the re-index command', () => {
  assert.equal(indexContentIdProblem([], 'sha256', '/ix'), undefined);
  assert.equal(indexContentIdProblem([image('sha256')], 'sha256', '/ix'), undefined);
  assert.equal(
    indexContentIdProblem([image(undefined)], 'sha256', '/ix'),
    'the index names content by BLAKE3, this agent by SHA-256: those entries are never found; re-index them with `flimcd index add --index /ix --reindex --content-hash sha256`',
  );
  assert.match(indexContentIdProblem([image('sha256', 1), image('blake3', 2)], 'sha256', '/ix')!, /^1 of the index's 2 images name content by BLAKE3/);
  assert.equal(indexContentIdProblem([image(undefined)], 'blake3', '/ix'), undefined);
});

test('an image indexed in one format is found by ids of that format only; re-registering in another starts it afresh', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'base.img');
  const data = Buffer.alloc(4 * 65536);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 16)) & 0xff;
  writeFileSync(img, data);
  const ix = new MemoryReplicaIndex();
  await indexImage(ix, img, 65536, undefined, 'raw', realContentModel('blake3'));
  const block = data.subarray(65536, 2 * 65536);
  assert.deepEqual(ix.lookup(65536, blake3(block)), { path: img, offset: 65536 });
  assert.equal(ix.lookup(65536, sha256(block)), undefined);
  assert.equal(ix.list()[0]!.contentIds, 'blake3');
  const again = await ix.ensureImage(img, { size: data.length, blockSize: 65536, kind: 'registered' });
  assert.equal(again.contentIds, 'sha256', 'the default format');
  assert.equal(again.blocks, 0, 'a new record: its entries are indexed again');
});

test('index add records the format; --reindex --content-hash re-indexes images of another; ls shows it', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'base.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 7));
  const ix = join(dir, 'ix');
  assert.equal((await flimcd(['index', 'add', '--index', ix, '--content-hash', 'blake3', img])).code, 0);
  const bad = await flimcd(['index', 'add', '--index', ix, '--content-hash', 'md5', img]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--content-hash must be one of sha256, blake3, not "md5"/);
  const plan = await flimcd(['plan', '--image', img, '--workload', 'light', '--index', ix]);
  assert.equal(plan.code, 2, plan.stderr);
  assert.match(plan.stderr, /the index names content by BLAKE3, this agent by SHA-256: .* --reindex --content-hash sha256/);
  const re = await flimcd(['index', 'add', '--index', ix, '--reindex', '--json']);
  assert.equal(re.code, 0, re.stderr);
  const opened = ReplicaIndex.open(ix, { readOnly: true });
  try {
    assert.deepEqual(opened.list().map((im) => [im.path, im.contentIds]), [[img, 'sha256']]);
  } finally {
    await opened.close();
  }
  const ls = await flimcd(['index', 'ls', '--index', ix]);
  assert.match(ls.stdout, /sha256 ids/);
});
