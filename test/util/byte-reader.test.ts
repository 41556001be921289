// Exact-length reads from a stream: views where possible, chunk lists bounded, back-pressure kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ByteReader } from '../../src/util/byte-reader.ts';

const bytes = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));

test('readChunks returns views of the received chunks, in order, split where the read ends', async () => {
  const s = new PassThrough();
  const r = new ByteReader(s);
  const a = bytes(0, 10);
  const b = bytes(10, 10);
  const c = bytes(20, 10);
  for (const x of [a, b, c]) s.write(x);
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(r.tryRead(3), bytes(0, 3));
  const chunks = r.tryReadChunks(15, 8)!;
  assert.equal(chunks.length, 2);
  assert.equal(chunks[0]!.buffer, a.buffer, 'a view of the first chunk, not a copy');
  assert.deepEqual(Buffer.concat(chunks), bytes(3, 15));
  // The rest: waits for bytes not yet received, then hands over the tail of c and the new chunk.
  const later = r.readChunks(17, 8);
  s.write(bytes(30, 5));
  const rest = await later;
  assert.deepEqual(rest.map((x) => x.length), [2, 10, 5]);
  assert.deepEqual(Buffer.concat(rest), bytes(18, 17));
  assert.deepEqual(r.tryReadChunks(0, 8), []);
  assert.equal(r.available, 0);
});

test('a read spanning more than maxChunks pieces is joined into one buffer', async () => {
  const s = new PassThrough();
  const r = new ByteReader(s);
  for (let i = 0; i < 50; i++) s.write(bytes(i, 1));
  await new Promise((res) => setImmediate(res));
  assert.equal(r.tryReadChunks(10, 10)!.length, 10, 'exactly maxChunks pieces stay views');
  const joined = r.tryReadChunks(11, 10)!;
  assert.equal(joined.length, 1);
  assert.deepEqual(joined[0], bytes(10, 11));
  assert.equal(r.available, 29);
});

test('a pending readChunks keeps the stream flowing past highWater, and the end rejects it', async () => {
  const s = new PassThrough();
  const r = new ByteReader(s, 16);
  const got = r.readChunks(64, 100);
  for (let i = 0; i < 8; i++) s.write(bytes(i * 8, 8));
  assert.deepEqual(Buffer.concat(await got), bytes(0, 64));
  const never = r.readChunks(10, 100);
  s.end();
  await assert.rejects(never, /closed/);
});
