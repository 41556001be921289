// The block-work pool: worker threads (loaded under tsx here) give the same ids
// and zstd frames as the work on this thread, take over buffers that own their
// memory and copy views, bound what is posted, and fail bad frames as protocol errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPoolSize, WorkerPool } from '../../src/workers/worker-pool.ts';
import { inThreadBlockWork } from '../../src/workers/block-work.ts';
import { blake3, realContentModel, sha256 } from '../../src/content/content-id.ts';
import { BlockDecompressor } from '../../src/wire/block-codec.ts';
import { ErrorCode } from '../../src/errors.ts';
import { randomBytes } from 'node:crypto';

/** Text-like, compressible bytes. */
function textBlock(seed: number, length = 65536): Buffer {
  const b = Buffer.allocUnsafe(length);
  const words = ['migrate', 'block', 'disk', 'link', 'target', 'source', 'zstd', 'core'];
  let pos = 0;
  for (let i = seed; pos < length; i = (i * 1103515245 + 12345) >>> 0) pos += b.write(`${words[i % words.length]} `, pos);
  return b;
}

test('pool size: the host\'s cores, at least 1, at most 2', () => {
  assert.equal(defaultPoolSize(1), 1);
  assert.equal(defaultPoolSize(2), 2);
  assert.equal(defaultPoolSize(16), 2);
  assert.equal(defaultPoolSize(0), 1);
});

for (const format of ['sha256', 'blake3'] as const) {
  test(`${format}: the pool's ids and zstd frames equal the work on this thread; an owned buffer is taken over and given back`, async (t) => {
    const pool = new WorkerPool({ size: 2, format });
    t.after(() => pool.close());
    const here = inThreadBlockWork(realContentModel(format));
    const hash = format === 'sha256' ? sha256 : blake3;
    for (let i = 0; i < 8; i++) {
      const original = textBlock(i);
      const block = Buffer.from(original);
      const [r, local] = await Promise.all([pool.encode({ block, hash: true, level: 3 }), here.encode({ block: Buffer.from(original), hash: true, level: 3 })]);
      assert.equal(block.length, 0, 'a buffer of its own is transferred, not copied');
      assert.ok(r.block.equals(original), 'the bytes come back');
      assert.ok(r.id!.equals(hash(original)));
      assert.ok(r.id!.equals(local.id!));
      assert.ok(r.payload && r.payload.length < original.length / 4, 'text compresses');
      assert.ok(new BlockDecompressor().decompress(r.payload, original.length).equals(original));
      const d = await pool.decode(r.payload, original.length, true);
      assert.ok(d.block.equals(original));
      assert.ok(d.id!.equals(r.id!));
    }
    assert.ok(pool.busySeconds() > 0);
  });
}

test('a view into a larger buffer is copied once, never detached; random bytes travel uncompressed', async (t) => {
  const pool = new WorkerPool({ size: 1 });
  t.after(() => pool.close());
  const big = Buffer.allocUnsafe(4 * 65536);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  const view = big.subarray(65536, 2 * 65536);
  const r = await pool.encode({ block: view, hash: true, level: 3 });
  assert.equal(view.length, 65536, 'the caller\'s view is intact');
  assert.ok(r.block.equals(view));
  assert.ok(r.id!.equals(sha256(view)));
  const noise = randomBytes(65536);
  const n = await pool.encode({ block: noise, hash: false, level: 3 });
  assert.equal(n.payload, undefined, 'zstd that saves less than 1/32 is not used');
  assert.equal(n.id, undefined);
});

test('a frame that does not decode is a protocol error; the pool keeps working', async (t) => {
  const pool = new WorkerPool({ size: 1 });
  t.after(() => pool.close());
  await assert.rejects(pool.decode(Buffer.from('not a zstd frame'), 65536, false), (e: unknown) => (e as { code?: string }).code === ErrorCode.PROTOCOL);
  const r = await pool.encode({ block: textBlock(1), hash: false, level: 1 });
  await assert.rejects(pool.decode(r.payload!, 4096, false), (e: unknown) => (e as { code?: string }).code === ErrorCode.PROTOCOL && /65536 bytes, expected 4096/.test((e as Error).message));
  assert.ok((await pool.decode(r.payload!, 65536, false)).block.equals(textBlock(1)));
});

test('back-pressure: callers beyond the bounded queue wait their turn and all complete, in any number', async (t) => {
  const pool = new WorkerPool({ size: 1, queuePerWorker: 1 });
  t.after(() => pool.close());
  let most = 0;
  const jobs = Array.from({ length: 64 }, (_, i) => pool.encode({ block: textBlock(i, 4096), hash: true, level: 0 }).then((r) => {
    most = Math.max(most, pool.postedJobs);
    return r;
  }));
  most = Math.max(most, pool.postedJobs);
  const got = await Promise.all(jobs);
  assert.equal(most, 1, 'never more than one job posted to the one worker');
  got.forEach((r, i) => assert.ok(r.id!.equals(sha256(textBlock(i, 4096)))));
});

test('closing the pool fails work still waiting, with a stable code', async () => {
  const pool = new WorkerPool({ size: 1, queuePerWorker: 1 });
  const jobs = Array.from({ length: 8 }, (_, i) => pool.encode({ block: textBlock(i), hash: true, level: 9 }));
  for (const j of jobs) j.catch(() => {});
  await pool.close();
  const results = await Promise.allSettled(jobs);
  assert.ok(results.some((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === ErrorCode.IO));
});
