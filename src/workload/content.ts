/**
 * Deterministic write content. A workload write carries a u32 content `tag`;
 * its bytes are regenerated from (seed, tag, offset) whenever needed, so the
 * verifier stores 4 bytes per 4 KiB page instead of the data.
 *
 * Each 4 KiB page is a 4 KiB window of a per-seed random buffer (1 MiB + 4 KiB,
 * built once), chosen by a hash of (tag, phase), with a 16-byte stamp at the
 * page start: magic "FLWL", tag, phase, seed (little-endian u32s). The phase is
 * the page's index inside its 1 MiB-aligned area (offset mod 1 MiB / 4 KiB).
 *
 * Consequences the workload relies on:
 * - Equal tag and equal phase → identical page; so two writes with the same
 *   tag at offsets congruent mod 1 MiB write identical bytes. Every tracking
 *   block size (4 KiB … 1 MiB) divides 1 MiB, so such copies are equal block
 *   for block and block-level dedup can find them (mail's duplicate writes).
 * - Different (tag, phase) → different page (the stamp differs), never all
 *   zero, and incompressible (random fill): dedup and compression gain nothing
 *   from fresh writes.
 * - Cost: one 4 KiB memcpy and one hash per page.
 */

export const PAGE_SIZE = 4096;
/** Content phase period: 1 MiB, the area size and the largest block size. */
export const CONTENT_PERIOD = 1 << 20;
const PAGES_PER_PERIOD = CONTENT_PERIOD / PAGE_SIZE;
const STAMP_MAGIC = 0x4c574c46; // "FLWL" little-endian
const RANDOM_LEN = CONTENT_PERIOD + PAGE_SIZE;

const randomBySeed = new Map<number, Uint8Array>();

function randomBuffer(seed: number): Uint8Array {
  let buf = randomBySeed.get(seed);
  if (!buf) {
    buf = new Uint8Array(RANDOM_LEN);
    const u = new Uint32Array(buf.buffer);
    // splitmix32 stream; independent of Prng so content never shifts when Prng use changes.
    let s = (seed ^ 0x5bd1e995) >>> 0;
    for (let i = 0; i < u.length; i++) {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      u[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (randomBySeed.size > 16) randomBySeed.clear();
    randomBySeed.set(seed, buf);
  }
  return buf;
}

function windowStart(seed: number, tag: number, phase: number): number {
  let h = Math.imul(tag ^ 0x27d4eb2d, 0x9e3779b1) ^ Math.imul(phase + 1, 0x85ebca77) ^ seed;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  h = (h ^ (h >>> 15)) >>> 0;
  // 8-byte aligned start keeps the copy cheap; RANDOM_LEN - PAGE_SIZE = 1 MiB of choices / 8.
  return (h % (CONTENT_PERIOD / 8)) * 8;
}

function pagePhase(pageOffset: number): number {
  return (pageOffset % CONTENT_PERIOD) / PAGE_SIZE;
}

function checkAligned(offset: number, length: number): void {
  if (offset % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0) {
    throw new RangeError(`workload content is defined per 4 KiB page: ${offset}+${length} is not page-aligned`);
  }
}

/** Writes the content of `tag` for [offset, offset + into.length) into `into` (page-aligned). */
export function fillContent(seed: number, tag: number, offset: number, into: Uint8Array): void {
  checkAligned(offset, into.length);
  const rnd = randomBuffer(seed >>> 0);
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  for (let pos = 0; pos < into.length; pos += PAGE_SIZE) {
    const phase = pagePhase(offset + pos);
    const start = windowStart(seed >>> 0, tag >>> 0, phase);
    into.set(rnd.subarray(start, start + PAGE_SIZE), pos);
    view.setUint32(pos, STAMP_MAGIC, true);
    view.setUint32(pos + 4, tag >>> 0, true);
    view.setUint32(pos + 8, phase, true);
    view.setUint32(pos + 12, seed >>> 0, true);
  }
}

/** The bytes a write of `tag` puts at [offset, offset + length); offset and length page-aligned. */
export function contentFor(seed: number, tag: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  fillContent(seed, tag, offset, out);
  return out;
}

/** What a page read back looks like, for mismatch reports. */
export type PageIdentity =
  | { kind: 'zero' }
  | { kind: 'workload'; tag: number; phase: number; seed: number; intact: boolean }
  | { kind: 'other'; head: string };

/** Identifies the page at data[at, at + 4096): all zero, a (possibly damaged) workload page, or something else. */
export function identifyPage(data: Uint8Array, at: number): PageIdentity {
  const page = data.subarray(at, at + PAGE_SIZE);
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  if (view.getUint32(0, true) === STAMP_MAGIC) {
    const tag = view.getUint32(4, true);
    const phase = view.getUint32(8, true);
    const seed = view.getUint32(12, true);
    let intact = false;
    if (phase < PAGES_PER_PERIOD) {
      const ref = scratchPage(seed, tag, phase * PAGE_SIZE);
      intact = Buffer.from(page.buffer, page.byteOffset, PAGE_SIZE).equals(ref);
    }
    return { kind: 'workload', tag, phase, seed, intact };
  }
  if (page.every((b) => b === 0)) return { kind: 'zero' };
  return { kind: 'other', head: Buffer.from(page.subarray(0, 16)).toString('hex') };
}

const scratch = Buffer.allocUnsafe(PAGE_SIZE);

/** The expected page in a shared scratch buffer (valid until the next call). */
function scratchPage(seed: number, tag: number, pageOffset: number): Buffer {
  fillContent(seed, tag, pageOffset, scratch);
  return scratch;
}

/** True when data[at, at + 4096) is exactly the content of `tag` at `pageOffset`. */
export function pageMatches(seed: number, tag: number, pageOffset: number, data: Uint8Array, at: number): boolean {
  const ref = scratchPage(seed, tag, pageOffset);
  return Buffer.from(data.buffer, data.byteOffset + at, PAGE_SIZE).equals(ref);
}
