// LocalContent's replica file cache: concurrent lookups that land on the same
// replica file must share one open, and closing must leave no descriptor behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { tempDir } from '../helpers/tmp.ts';
import { Prng } from '../../src/workload/prng.ts';
import { MemoryDisk } from '../../src/block/memory.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { contentId, REAL_CONTENT_MODEL } from '../../src/content/content-id.ts';
import { LocalContent } from '../../src/migrate/local-content.ts';

const BS = 65536;
const openFds = () => readdirSync('/proc/self/fd').length;

test('concurrent lookups share replica opens and close() releases every descriptor', async (t) => {
  const dir = tempDir(t);
  const index = ReplicaIndex.open(join(dir, 'index'));
  t.after(() => index.close());
  // 20 replica files (more than the open-file cap), 8 distinct blocks each.
  const blocks: Buffer[] = [];
  for (let f = 0; f < 20; f++) {
    const img = Buffer.allocUnsafe(8 * BS);
    new Prng(100 + f).fill(img);
    const path = join(dir, `r${f}.img`);
    writeFileSync(path, img);
    await indexImage(index, path, BS);
    for (let i = 0; i < 8; i++) blocks.push(img.subarray(i * BS, (i + 1) * BS));
  }
  const before = openFds();
  const local = new LocalContent({ image: new MemoryDisk(blocks.length * BS), imagePath: join(dir, 'target.img'), blockSize: BS, content: REAL_CONTENT_MODEL, preexisting: false, index, log: pino({ level: 'silent' }) });
  // All lookups at once: without a shared open, each first read of a file opens it again and leaks the others.
  const found = await Promise.all(blocks.map(async (b, i) => {
    const into = Buffer.alloc(BS);
    const where = await local.findLocal(i, contentId(b), into);
    return where === 'replica' && into.equals(b);
  }));
  assert.equal(found.filter(Boolean).length, blocks.length, 'every block found byte-exact in its replica');
  assert.ok(openFds() - before <= 16, `at most the cap of replica files open (${openFds() - before})`);
  await local.close();
  assert.equal(openFds(), before, 'no descriptor left open after close()');
});

test('content awaited from the source is abandoned at sibling hosts when its block receives other content', async () => {
  const abandoned: string[] = [];
  const remote = {
    lookup: async (_bs: number, ids: Uint8Array[]) => ids.map(() => undefined),
    fetch: async () => false,
    stale: () => undefined,
    publish: () => undefined,
    abandon: (_bs: number, ids: Uint8Array[]) => abandoned.push(...ids.map((id) => Buffer.from(id).toString('hex'))),
  };
  const local = new LocalContent({ image: new MemoryDisk(8 * BS), imagePath: '/nonexistent/target.img', blockSize: BS, content: REAL_CONTENT_MODEL, preexisting: false, remote, log: pino({ level: 'silent' }) });
  const content = (k: number) => Buffer.alloc(BS, k + 1);
  const ids = [0, 1, 2, 3, 4].map((k) => contentId(content(k)).subarray(0, 16));
  await Promise.all(local.lookupRemote([0, 1, 2, 3, 4], ids)!);
  local.noteWritten(0, contentId(content(0))); // what was offered: delivered, nothing abandoned
  local.noteWritten(1, contentId(content(9))); // rewritten at the source: other content came
  local.noteChanged(2); // the VM wrote it here
  local.noteZeroed(3, 2); // zeroed
  local.noteWritten(1, contentId(content(1))); // no longer awaited: nothing more
  assert.deepEqual(abandoned.sort(), [1, 2, 3, 4].map((k) => Buffer.from(ids[k]!).toString('hex')).sort());
});
