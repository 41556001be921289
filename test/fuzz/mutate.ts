/**
 * Seeded, reproducible byte mutations for fuzzing: input `i` of a run with
 * seed `s` is a pure function of (s, i), so any failure replays from the two
 * numbers alone (FLIMCD_FUZZ_SEED, FLIMCD_FUZZ_INDEX).
 */
import { Prng } from '../../src/workload/prng.ts';

/** The generator for input `index` of a run seeded `seed`. */
export function inputRng(seed: number, index: number): Prng {
  return new Prng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0);
}

const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0xffff, 0x10000, 0x100000, 0x200000, 0x200001, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export function pick<T>(rng: Prng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

export function randomBytes(rng: Prng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  rng.fill(b);
  return b;
}

/** A u32 biased to boundary values. */
export function interestingU32(rng: Prng): number {
  return rng.next() < 0.7 ? pick(rng, INTERESTING_U32) : rng.u32();
}

/**
 * Applies 1-4 random mutations (bit flips, boundary values over 1/2/4/8
 * bytes, truncation, insertion, deletion, duplication); the result is at most
 * `maxLen` bytes.
 */
export function mutate(input: Buffer, rng: Prng, maxLen = 1 << 16): Buffer {
  let b = Buffer.from(input);
  const ops = 1 + rng.int(4);
  for (let k = 0; k < ops; k++) {
    const at = b.length ? rng.int(b.length) : 0;
    switch (rng.int(9)) {
      case 0: if (b.length) b[at] = b[at]! ^ (1 << rng.int(8)); break;
      case 1: if (b.length) b[at] = pick(rng, [0, 1, 0x7f, 0x80, 0xff]); break;
      case 2: if (b.length >= 4) { const p = rng.int(b.length - 3); b.writeUInt32BE(interestingU32(rng) >>> 0, p); } break;
      case 3: if (b.length >= 2) { const p = rng.int(b.length - 1); b.writeUInt16BE(pick(rng, [0, 1, 0xff, 0x7fff, 0x8000, 0xffff]), p); } break;
      case 4: if (b.length >= 8) { const p = rng.int(b.length - 7); b.writeBigUInt64BE(pick(rng, [0n, 1n, 0x7fffffffffffffffn, 0xffffffffffffffffn, 1n << 53n, 1n << 32n]), p); } break;
      case 5: b = b.subarray(0, rng.int(b.length + 1)); break;
      case 6: b = Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + rng.int(16)), b.subarray(at)]); break;
      case 7: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16)))]); break;
      case 8: { const n = Math.min(b.length - at, 1 + rng.int(64)); b = Buffer.concat([b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)]); break; }
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

/** Splits a buffer into 1-8 chunks at random points (decoders must not care where reads split). */
export function chunked(b: Buffer, rng: Prng): Buffer[] {
  const n = 1 + rng.int(8);
  if (n === 1 || b.length < 2) return [b];
  const cuts = Array.from({ length: n - 1 }, () => rng.int(b.length)).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, b.length]) {
    if (c > prev) out.push(b.subarray(prev, c));
    prev = c;
  }
  return out;
}
