/**
 * Generated agent-link byte streams: valid messages of every type (random
 * fields), framed; then either left valid, mutated inside the payload with the
 * frame checksum fixed up (so the mutation reaches decodeMessage), mutated as
 * raw stream bytes (reaches FrameDecoder), or replaced by garbage.
 */
import type { Prng } from '../../src/workload/prng.ts';
import { encodeFrame } from '../../src/wire/frame.ts';
import { encodeMessage, MsgType, CONTENT_ID_BYTES, OFFER_ID_BYTES, type Message } from '../../src/wire/messages.ts';
import type { TargetStats } from '../../src/wire/target-stats.ts';
import { interestingU32, mutate, pick, randomBytes } from './mutate.ts';

const hex = (rng: Prng, n: number) => randomBytes(rng, n).toString('hex');
const reason = (rng: Prng) => rng.int(6) as 0;

function targetStats(rng: Prng): TargetStats {
  const dedup = { refBlocks: rng.int(10), refFromReceived: 0, refFromLocal: 0, refFallback: 0, offered: rng.int(10), offerHave: 0, compressedBlocks: rng.int(10) };
  return {
    phase: 'verify', blocks: rng.int(1000), blockSize: 65536, receivedBlocks: { bulk: rng.int(1000) }, receivedBytes: rng.int(1 << 30), dedup,
    readBlocks: rng.int(100), missBlocks: rng.int(10), claimedByWrite: 0, partialWriteFetches: 0, droppedData: 0, fetchRequests: rng.int(10),
    ...(rng.next() < 0.5 ? { missP50: rng.next() * 100, missP99: rng.next() * 100, missMean: rng.next() * 100 } : {}),
  };
}

export function randomMessage(rng: Prng): Message {
  const types = Object.values(MsgType);
  const type = pick(rng, types);
  switch (type) {
    case MsgType.HELLO: return { type, hello: { version: 1, session: hex(rng, 8), imageSize: rng.int(1 << 30) * 512, blockSize: 65536, algorithm: 'flimcd', features: ['dedup', 'prefetch'].slice(0, rng.int(3)), processedSeq: rng.int(1000) } };
    case MsgType.WELCOME: return { type, welcome: { version: 1, session: hex(rng, 8), features: ['offer'], processedSeq: rng.int(1000) } };
    case MsgType.ERROR: return { type, code: 'BUSY', message: 'x'.repeat(rng.int(100)) };
    case MsgType.ACK: return { type, seq: rng.u32() };
    case MsgType.PING: case MsgType.PONG: return { type, t: rng.next() * 1e9 };
    case MsgType.DATA: return { type, block: rng.u32(), reason: reason(rng), data: randomBytes(rng, rng.int(5000)), compressed: rng.next() < 0.3 };
    case MsgType.ZERO: return { type, first: rng.u32(), count: rng.int(1000), reason: reason(rng) };
    case MsgType.FETCH: return { type, prefetch: rng.next() < 0.5, blocks: Array.from({ length: rng.int(20) }, () => rng.u32()) };
    case MsgType.CANCEL: return { type, blocks: Array.from({ length: rng.int(20) }, () => rng.u32()) };
    case MsgType.OFFER: {
      const n = 1 + rng.int(50);
      const blocks = new Uint32Array(n);
      let b = rng.int(1000);
      for (let i = 0; i < n; i++) { blocks[i] = b; b += rng.next() < 0.8 ? 1 : 1 + rng.int(5000); }
      return { type, batch: rng.u32(), blocks, ids: randomBytes(rng, n * OFFER_ID_BYTES) };
    }
    case MsgType.HAVE: { const count = 1 + rng.int(100); return { type, batch: rng.u32(), count, have: new Uint8Array(randomBytes(rng, Math.ceil(count / 8))) }; }
    case MsgType.REF: return { type, block: rng.u32(), reason: reason(rng), id: randomBytes(rng, CONTENT_ID_BYTES) };
    case MsgType.CUTOVER: return {
      type, cutover: { frozenAt: rng.next() * 1e6, missing: rng.int(100), heat: rng.next() < 0.5 ? { areaBlocks: 16, reads: [[rng.int(100), rng.next() * 10]], co: [[1, [2, 3]]] } : undefined },
    };
    case MsgType.MISSING: {
      const count = 1 + rng.int(4096);
      return { type, last: rng.next() < 0.2, span: { first: rng.int(1 << 20) * 8, count, bits: new Uint8Array(randomBytes(rng, Math.ceil(count / 8))) } };
    }
    case MsgType.WRITTEN: {
      const n = 1 + rng.int(50);
      const blocks = new Uint32Array(n);
      let b = rng.int(1000);
      for (let i = 0; i < n; i++) { blocks[i] = b; b += 1 + rng.int(100); }
      return { type, blocks, ids: randomBytes(rng, n * CONTENT_ID_BYTES) };
    }
    case MsgType.CUTOVER_DONE: return { type, servingAt: rng.next() * 1e6 };
    case MsgType.VERIFY: return { type, verify: { root: hex(rng, 32), targetWrites: rng.int(100), hashMs: rng.next() * 10, stats: targetStats(rng) } };
    case MsgType.DONE: return { type, done: { verified: rng.next() < 0.5, root: hex(rng, 32) } };
    case MsgType.ABORT: return { type, reason: 'operator' };
    default: throw new Error(`unhandled type ${type}`);
  }
}

const frame = (type: number, seq: number, payload: Buffer) => Buffer.concat(encodeFrame(type, 0, seq, [payload]));

export type WireInputKind = 'valid' | 'payload-mutated' | 'stream-mutated' | 'garbage';

/** One link byte stream; for `valid`, the message types it must decode to. */
export function wireInput(rng: Prng): { bytes: Buffer; kind: WireInputKind; types: number[] } {
  const r = rng.next();
  if (r < 0.1) return { bytes: randomBytes(rng, rng.int(128)), kind: 'garbage', types: [] };
  const msgs = Array.from({ length: 1 + rng.int(4) }, () => randomMessage(rng));
  const payloads = msgs.map((m) => Buffer.concat(encodeMessage(m)));
  if (r < 0.3) return { bytes: Buffer.concat(msgs.map((m, i) => frame(m.type, i, payloads[i]!))), kind: 'valid', types: msgs.map((m) => m.type) };
  if (r < 0.75) {
    // Valid frames around mutated payloads (occasionally under another type): the decoder sees them.
    const frames = msgs.map((m, i) => {
      const type = rng.next() < 0.1 ? (rng.next() < 0.5 ? rng.int(256) : pick(rng, Object.values(MsgType))) : m.type;
      const p = rng.next() < 0.1 ? Buffer.alloc(0) : mutate(payloads[i]!, rng, 1 << 16);
      if (rng.next() < 0.05 && p.length >= 4) p.writeUInt32BE(interestingU32(rng) >>> 0, 0);
      return frame(type, i, p);
    });
    return { bytes: Buffer.concat(frames), kind: 'payload-mutated', types: [] };
  }
  const stream = Buffer.concat(msgs.map((m, i) => frame(m.type, i, payloads[i]!)));
  return { bytes: mutate(stream, rng, 1 << 17), kind: 'stream-mutated', types: [] };
}
