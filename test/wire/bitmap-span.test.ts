// Block bitmaps on the wire: spans of at most MAX_SPAN_BLOCKS, run lengths when shorter, exact round trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../../src/util/bitmap.ts';
import { bitmapSpans, decodeSpan, encodeSpan, MAX_SPAN_BLOCKS } from '../../src/wire/bitmap-span.ts';
import { ProtocolError } from '../../src/errors.ts';
import { Prng } from '../../src/workload/prng.ts';

function roundTrip(bits: Bitmap): { out: Bitmap; payloads: number[] } {
  const out = new Bitmap(bits.size);
  const payloads: number[] = [];
  for (const span of bitmapSpans(bits)) {
    const payload = Buffer.concat(encodeSpan(span));
    payloads.push(payload.length);
    const d = decodeSpan(payload, 'test');
    out.setSpan(d.first, d.count, d.bits);
  }
  return { out, payloads };
}

test('a bitmap comes back bit for bit: sparse, dense, random, and not a multiple of 8 blocks', () => {
  const rng = new Prng(3);
  const size = 3 * MAX_SPAN_BLOCKS + 13;
  const shapes: Array<[string, (b: Bitmap) => void]> = [
    ['empty', () => {}],
    ['one bit', (b) => b.set(size - 1)],
    ['runs', (b) => { for (let i = 1000; i < 900_000; i++) b.set(i); b.setRange(2_500_000, 400_000); }],
    ['random', (b) => { for (let i = 0; i < size; i++) if (rng.next() < 0.5) b.set(i); }],
    ['all', (b) => b.setAll()],
  ];
  for (const [name, fill] of shapes) {
    const bits = new Bitmap(size);
    fill(bits);
    const { out } = roundTrip(bits);
    assert.equal(out.count, bits.count, name);
    assert.ok(Buffer.from(out.bits).equals(Buffer.from(bits.bits)), name);
  }
});

test('spans with no bit set are not sent, and a sparse span travels as run lengths', () => {
  const bits = new Bitmap(1 << 25);
  bits.setRange(5, 100);
  bits.set((1 << 25) - 1);
  const { payloads } = roundTrip(bits);
  assert.equal(payloads.length, 2);
  for (const p of payloads) assert.ok(p < 32, `span of ${p} bytes`);
});

test('malformed spans are protocol errors naming the message', () => {
  const span = { first: 0, count: 16, bits: new Uint8Array([0xf0, 0x0f]) };
  const good = Buffer.concat(encodeSpan(span));
  assert.deepEqual(decodeSpan(good, 'MISSING').bits, span.bits);
  const tooBig = Buffer.from(good);
  tooBig.writeUInt32BE(MAX_SPAN_BLOCKS + 1, 4);
  assert.throws(() => decodeSpan(tooBig, 'MISSING'), (e: Error) => e instanceof ProtocolError && /MISSING: span of/.test(e.message));
  const runs = Buffer.from([0, 0, 0, 0, 0, 0, 0, 16, 1, 10, 10]); // runs cover 20 of 16
  assert.throws(() => decodeSpan(runs, 'MISSING'), /runs cover more/);
  const short = Buffer.from([0, 0, 0, 0, 0, 0, 0, 16, 1, 10]);
  assert.throws(() => decodeSpan(short, 'MISSING'), /runs cover 10 of the span's 16/);
  assert.throws(() => decodeSpan(Buffer.from([0, 0, 0, 0, 0, 0, 0, 16, 7]), 'MISSING'), /unknown bitmap form 7/);
});
