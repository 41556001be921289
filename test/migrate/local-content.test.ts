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
