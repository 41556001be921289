import { ProtocolError } from '../errors.ts';
import type { Bitmap } from '../util/bitmap.ts';

/**
 * A block bitmap travels in spans of at most this many blocks (128 KiB of raw
 * bits), so no message grows with the image: a 2 TiB image at 64 KiB blocks
 * (2^25 blocks) is at most 32 spans, and spans with no bit set are not sent.
 */
export const MAX_SPAN_BLOCKS = 1 << 20;

/** How a span's bits are written: the raw bits, or alternating run lengths (clear first) as varints. */
const RAW = 0;
const RUNS = 1;

/** Bits [first, first + count) of a bitmap; bit i of `bits` is block first + i. */
export interface BitmapSpan {
  first: number;
  count: number;
  bits: Uint8Array;
}

/**
 * The spans of `bits` with any bit set, in block order, each at most
 * `maxSpan` blocks. Bounded work per span: empty bytes are skipped.
 */
export function* bitmapSpans(bits: Bitmap, maxSpan = MAX_SPAN_BLOCKS): Generator<BitmapSpan> {
  for (let first = bits.nextSet(0); first >= 0; ) {
    // Spans start on a byte boundary so their bits are a plain copy.
    const start = first - (first % 8);
    const count = Math.min(maxSpan, bits.size - start);
    yield { first: start, count, bits: bits.bits.slice(start >> 3, (start >> 3) + Math.ceil(count / 8)) };
    first = start + count < bits.size ? bits.nextSet(start + count) : -1;
  }
}

function pushVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function getBit(bits: Uint8Array, i: number): boolean {
  return (bits[i >> 3]! & (1 << (i & 7))) !== 0;
}

/** The span's bits as run lengths, or undefined as soon as that would not be shorter than the raw bits. */
function encodeRuns(span: BitmapSpan): Buffer | undefined {
  const rawBytes = Math.ceil(span.count / 8);
  const out: number[] = [];
  let want = false;
  for (let i = 0; i < span.count; ) {
    let j = i;
    // Whole bytes of the value we are counting are skipped at once.
    while (j < span.count) {
      if ((j & 7) === 0 && j + 8 <= span.count && span.bits[j >> 3] === (want ? 0xff : 0)) {
        j += 8;
        continue;
      }
      if (getBit(span.bits, j) !== want) break;
      j++;
    }
    pushVarint(out, j - i);
    if (out.length >= rawBytes) return undefined;
    i = j;
    want = !want;
  }
  return Buffer.from(out);
}

/** Encodes a span: 4-byte first, 4-byte count, 1-byte form, then the bits (runs when shorter). */
export function encodeSpan(span: BitmapSpan): Buffer[] {
  const runs = encodeRuns(span);
  const h = Buffer.allocUnsafe(9);
  h.writeUInt32BE(span.first, 0);
  h.writeUInt32BE(span.count, 4);
  h.writeUInt8(runs ? RUNS : RAW, 8);
  return [h, runs ?? Buffer.from(span.bits.buffer, span.bits.byteOffset, Math.ceil(span.count / 8))];
}

/** Decodes what encodeSpan wrote; anything malformed or oversized is a ProtocolError naming `what`. */
export function decodeSpan(payload: Buffer, what: string): BitmapSpan {
  if (payload.length < 9) throw new ProtocolError(`${what}: payload of ${payload.length} bytes is too short`);
  const first = payload.readUInt32BE(0);
  const count = payload.readUInt32BE(4);
  const form = payload.readUInt8(8);
  if (count === 0 || count > MAX_SPAN_BLOCKS) throw new ProtocolError(`${what}: span of ${count} blocks (1-${MAX_SPAN_BLOCKS} allowed)`);
  const body = payload.subarray(9);
  const rawBytes = Math.ceil(count / 8);
  if (form === RAW) {
    if (body.length !== rawBytes) throw new ProtocolError(`${what}: ${body.length} bytes do not hold a bitmap of ${count}`);
    const bits = new Uint8Array(body);
    if (count % 8) bits[rawBytes - 1]! &= (1 << (count % 8)) - 1;
    return { first, count, bits };
  }
  if (form !== RUNS) throw new ProtocolError(`${what}: unknown bitmap form ${form}`);
  const bits = new Uint8Array(rawBytes);
  let at = 0;
  let set = false;
  for (let p = 0; p < body.length; ) {
    let v = 0;
    let mul = 1;
    for (let k = 0; ; k++) {
      if (p >= body.length || k > 4) throw new ProtocolError(`${what}: run lengths are truncated or malformed`);
      const byte = body[p++]!;
      v += (byte & 0x7f) * mul;
      mul *= 128;
      if (byte < 0x80) break;
    }
    if (at + v > count) throw new ProtocolError(`${what}: runs cover more than the span's ${count} blocks`);
    if (set) for (let i = at; i < at + v; i++) bits[i >> 3]! |= 1 << (i & 7);
    at += v;
    set = !set;
  }
  if (at !== count) throw new ProtocolError(`${what}: runs cover ${at} of the span's ${count} blocks`);
  return { first, count, bits };
}
