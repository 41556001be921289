/**
 * Generated NBD client byte streams: structure-aware (a plausible handshake
 * with options, usually reaching transmission, then requests with boundary
 * offsets, lengths, flags and payloads), then often mutated; some inputs are
 * pure garbage. Everything derives from the given Prng.
 */
import type { Prng } from '../../src/workload/prng.ts';
import { Cmd, CmdFlags, IHAVEOPT, Info, Opt, REQUEST_MAGIC } from '../../src/nbd/protocol.ts';
import { interestingU32, mutate, pick, randomBytes } from './mutate.ts';

export const FUZZ_EXPORT_SIZE = 1 << 20;
const NAMES = ['', 'ro', 'nope', 'x'.repeat(300)];

function option(opt: number, data: Buffer, rng: Prng): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(IHAVEOPT, 0);
  h.writeUInt32BE(opt, 8);
  // Mostly the true length; sometimes a lie.
  h.writeUInt32BE(rng.next() < 0.9 ? data.length : interestingU32(rng) >>> 0, 12);
  return Buffer.concat([h, data]);
}

function str32(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const l = Buffer.alloc(4);
  l.writeUInt32BE(b.length);
  return Buffer.concat([l, b]);
}

function infoData(rng: Prng): Buffer {
  const infos = Array.from({ length: rng.int(5) }, () => (rng.next() < 0.8 ? pick(rng, [Info.EXPORT, Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE]) : rng.int(65536)));
  const c = Buffer.alloc(2 + 2 * infos.length);
  c.writeUInt16BE(infos.length, 0);
  infos.forEach((v, i) => c.writeUInt16BE(v, 2 + 2 * i));
  return Buffer.concat([str32(pick(rng, NAMES)), c]);
}

function metaData(rng: Prng): Buffer {
  const qs = Array.from({ length: rng.int(4) }, () => pick(rng, ['base:allocation', 'base:', 'qemu:dirty-bitmap:x', '', 'z'.repeat(rng.int(70000))]));
  const n = Buffer.alloc(4);
  n.writeUInt32BE(rng.next() < 0.9 ? qs.length : interestingU32(rng) >>> 0);
  return Buffer.concat([str32(pick(rng, NAMES)), n, ...qs.map(str32)]);
}

function handshake(rng: Prng): Buffer[] {
  const parts: Buffer[] = [];
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(rng.next() < 0.9 ? pick(rng, [1, 3]) : interestingU32(rng) >>> 0);
  parts.push(flags);
  const n = rng.int(6);
  for (let k = 0; k < n; k++) {
    const opt = rng.next() < 0.9 ? pick(rng, [Opt.LIST, Opt.STRUCTURED_REPLY, Opt.INFO, Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT, Opt.STARTTLS, Opt.EXTENDED_HEADERS, Opt.PEEK_EXPORT]) : rng.u32();
    const data = opt === Opt.INFO ? infoData(rng) : opt === Opt.LIST_META_CONTEXT || opt === Opt.SET_META_CONTEXT ? metaData(rng) : rng.next() < 0.8 ? Buffer.alloc(0) : randomBytes(rng, rng.int(32));
    parts.push(option(opt, data, rng));
  }
  const end = rng.next();
  if (end < 0.75) parts.push(option(Opt.GO, infoData(rng), rng));
  else if (end < 0.85) parts.push(option(Opt.EXPORT_NAME, Buffer.from(pick(rng, NAMES)), rng));
  else if (end < 0.9) parts.push(option(Opt.ABORT, Buffer.alloc(0), rng));
  return parts;
}

const OFFSETS = [0, 1, 511, 512, 4096, FUZZ_EXPORT_SIZE - 4096, FUZZ_EXPORT_SIZE - 1, FUZZ_EXPORT_SIZE, FUZZ_EXPORT_SIZE + 1, 2 ** 32, 2 ** 53, 2 ** 63, 2 ** 64 - 1];
const LENGTHS = [0, 1, 512, 4096, 65536, 1 << 20, (1 << 20) + 1, 32 << 20, (32 << 20) + 1, 0x7fffffff, 0xffffffff];

function request(rng: Prng): Buffer {
  const type = rng.next() < 0.9 ? pick(rng, [Cmd.READ, Cmd.READ, Cmd.WRITE, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS, Cmd.RESIZE]) : rng.int(65536);
  const flags = rng.next() < 0.7 ? pick(rng, [0, CmdFlags.FUA, CmdFlags.NO_HOLE, CmdFlags.DF, CmdFlags.REQ_ONE, CmdFlags.FAST_ZERO, CmdFlags.PAYLOAD_LEN]) : rng.int(65536);
  const offset = rng.next() < 0.5 ? pick(rng, OFFSETS) : rng.int(FUZZ_EXPORT_SIZE);
  const length = rng.next() < 0.5 ? pick(rng, LENGTHS) : rng.int(70000);
  const h = Buffer.alloc(28);
  h.writeUInt32BE(rng.next() < 0.97 ? REQUEST_MAGIC : rng.u32(), 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(rng.u32()), 8);
  h.writeBigUInt64BE(BigInt(Math.min(offset, 2 ** 64 - 1)) & 0xffffffffffffffffn, 16);
  h.writeUInt32BE(length >>> 0, 24);
  if (type !== Cmd.WRITE) return h;
  // A write's payload: usually as long as declared (when small), else short (the stream ends mid-payload).
  const payload = randomBytes(rng, length <= 70000 && rng.next() < 0.85 ? length : rng.int(4096));
  return Buffer.concat([h, payload]);
}

/** One client byte stream, and what kind it is (for the outcome tally). */
export function nbdInput(rng: Prng): { bytes: Buffer; kind: string } {
  const r = rng.next();
  if (r < 0.05) return { bytes: randomBytes(rng, rng.int(256)), kind: 'garbage' };
  const parts = handshake(rng);
  const reqs = rng.int(8);
  for (let k = 0; k < reqs; k++) parts.push(request(rng));
  if (rng.next() < 0.3) {
    const disc = Buffer.alloc(28);
    disc.writeUInt32BE(REQUEST_MAGIC, 0);
    disc.writeUInt16BE(Cmd.DISC, 6);
    parts.push(disc);
  }
  const valid = Buffer.concat(parts);
  if (r < 0.45) return { bytes: valid, kind: 'structured' };
  return { bytes: mutate(valid, rng, 1 << 18), kind: 'mutated' };
}
