import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCompressor, BlockDecompressor } from '../../src/wire/block-codec.ts';
import { Prng } from '../../src/workload/prng.ts';
import { ProtocolError } from '../../src/errors.ts';

test('compressible blocks shrink and decode exactly; incompressible ones travel raw', () => {
  const c = new BlockCompressor(3);
  const d = new BlockDecompressor();
  const text = Buffer.alloc(65536);
  for (let o = 0; o < text.length; o += 16) text.write(`line ${o % 977} ok\n`.padEnd(16), o);
  const r = c.compress(text);
  assert.equal(r.compressed, true);
  assert.ok(r.payload.length < text.length / 4);
  assert.ok(d.decompress(r.payload, text.length).equals(text));
  const rnd = Buffer.allocUnsafe(65536);
  new Prng(1).fill(rnd);
  const r2 = c.compress(rnd);
  assert.equal(r2.compressed, false);
  assert.equal(r2.payload, rnd, 'raw blocks are not copied');
  assert.equal(c.stats.compressedBlocks, 1);
  assert.equal(c.stats.rawBlocks, 1);
});

test('a frame that decodes to the wrong size or does not decode is a protocol error', () => {
  const c = new BlockCompressor(1);
  const d = new BlockDecompressor();
  const z = c.compress(Buffer.alloc(65536, 1)).payload;
  assert.throws(() => d.decompress(z, 4096), ProtocolError);
  assert.throws(() => d.decompress(Buffer.from('not zstd at all'), 65536), ProtocolError);
  const cut = z.subarray(0, z.length - 2);
  assert.throws(() => d.decompress(cut, 65536), ProtocolError);
  // A frame claiming less content than expected is refused too.
  const small = c.compress(Buffer.alloc(4096, 2)).payload;
  assert.throws(() => d.decompress(small, 65536), ProtocolError);
});

test('decodeBlock gives the block a DATA payload carries: decompressed when compressed, else the payload itself of exactly the block length', () => {
  const c = new BlockCompressor(3);
  const d = new BlockDecompressor();
  const block = Buffer.alloc(8192, 'abc');
  const r = c.compress(block);
  assert.equal(r.compressed, true);
  assert.ok(d.decodeBlock(r.payload, true, block.length).equals(block));
  assert.equal(d.decodeBlock(block, false, block.length), block, 'a raw payload is not copied');
  assert.throws(() => d.decodeBlock(block.subarray(1), false, block.length), ProtocolError);
  assert.throws(() => d.decodeBlock(r.payload, false, block.length), ProtocolError, 'a compressed payload read as raw has the wrong size');
  assert.throws(() => d.decodeBlock(block, true, block.length), ProtocolError, 'raw bytes are no zstd frame');
});
