import { z } from 'zod';
import { ProtocolError } from '../errors.ts';
import { TargetStatsSchema } from './target-stats.ts';
import { decodeSpan, encodeSpan, type BitmapSpan } from './bitmap-span.ts';

/**
 * Protocol version spoken in HELLO; a peer with another major version is refused.
 * 2: block bitmaps travel in MISSING spans and the target's write ids in WRITTEN
 * batches (no message grows with the image).
 */
export const WIRE_VERSION = 2;

export const MsgType = {
  HELLO: 1,
  WELCOME: 2,
  ERROR: 3,
  ACK: 4,
  PING: 5,
  PONG: 6,
  DATA: 10,
  ZERO: 11,
  FETCH: 12,
  CANCEL: 13,
  /** Source → target: content ids of blocks it is about to send; "which of these can you make locally?" */
  OFFER: 14,
  /** Target → source: which blocks of an OFFER it has materialised from local content. */
  HAVE: 15,
  /** Source → target: this block's content is the content with this id (sent earlier, or in the target's index). */
  REF: 16,
  CUTOVER: 20,
  CUTOVER_DONE: 21,
  /**
   * A span of a missing-block bitmap. Source → target: the blocks the target
   * lacks, before CUTOVER. Target → source on a post-copy resume: what it still
   * lacks, the last span flagged.
   */
  MISSING: 22,
  VERIFY: 30,
  DONE: 31,
  /** Target → source, before VERIFY: blocks the VM wrote at the target with their content ids, in block order. */
  WRITTEN: 33,
  ABORT: 32,
} as const;

/** Why a block travels; the target counts them separately and the report shows the split. */
export const DataReason = {
  BULK: 0,
  DIRTY: 1,
  STOP_COPY: 2,
  DEMAND: 3,
  PREFETCH: 4,
  PUSH: 5,
} as const;
export type DataReasonValue = (typeof DataReason)[keyof typeof DataReason];

/** Set in a DATA frame's reason byte when the block travels zstd-compressed. */
export const DATA_COMPRESSED = 0x80;
/** Most blocks one OFFER carries (bounds the target's work per message). */
export const MAX_OFFER_BLOCKS = 4096;
export const CONTENT_ID_BYTES = 32;
/**
 * OFFER carries ids cut to 128 bits: enough to find a candidate (the target
 * re-hashes what it finds and compares), at half the bytes on the wire.
 */
export const OFFER_ID_BYTES = 16;
/** Most blocks one WRITTEN carries (36 bytes each: 576 KiB). */
export const MAX_WRITTEN_BLOCKS = 16384;

/** Zigzag varint of the step between consecutive offered blocks (mostly 1: one byte). */
function writeVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

export const HelloSchema = z.object({
  version: z.number().int(),
  session: z.string().min(1).max(128),
  imageSize: z.number().int().nonnegative(),
  blockSize: z.number().int().min(4096).max(1 << 20),
  algorithm: z.string().max(32),
  features: z.array(z.string().max(64)).max(64),
  /** Highest seq the source has processed from the target (resume). */
  processedSeq: z.number().int().nonnegative(),
  /** Random id of the source process: a different one after a restart means its channel state is gone. */
  incarnation: z.string().max(64).optional(),
  /** The target process the source's channel last talked to (reattach only if it is still the same one). */
  peerIncarnation: z.string().max(64).optional(),
  /**
   * 'plan': not a migration. `flimcd plan` asks which of the image's blocks the target holds
   * (OFFER, answered by HAVE) and nothing is written. Absent means a migration.
   */
  purpose: z.enum(['migrate', 'plan']).optional(),
  /** Merkle root (hex) of the source image's backing file in this block size: a target whose base has the same root takes the from-backing blocks from it. */
  backingRoot: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** How this agent names content (src/content/content-id.ts); absent: `blake3`, the only format before it was named. */
  contentIds: z.string().max(32).optional(),
});
export type Hello = z.infer<typeof HelloSchema>;

export const WelcomeSchema = z.object({
  version: z.number().int(),
  session: z.string(),
  features: z.array(z.string().max(64)).max(64),
  processedSeq: z.number().int().nonnegative(),
  /** Random id of the target process. */
  incarnation: z.string().max(64).optional(),
  /**
   * How the session continues: 'new' (first connection), 'attach' (both
   * channels intact: resend what the peer has not processed), 'precopy'
   * (a side restarted before cut-over: re-derive what the target lacks by
   * content id), 'postcopy' (a side restarted after cut-over: `missing` is the
   * target's durable presence map, the source pushes exactly those blocks).
   */
  resume: z.enum(['new', 'attach', 'precopy', 'postcopy', 'done']).optional(),
  /** The target's base against the HELLO's backingRoot: 'same' means blocks from the backing chain need not be sent. */
  backing: z.enum(['same', 'differs', 'none']).optional(),
  /** How this agent names content, as in HELLO; absent: `blake3`. */
  contentIds: z.string().max(32).optional(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

export const ErrorSchema = z.object({ code: z.string().max(64), message: z.string().max(4096) });

const isIndex = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;

/**
 * An array of at most `max` [non-negative integer, non-negative number (or integer)] pairs, checked
 * in one loop: CUTOVER's heat holds thousands of them, and zod's per-element tuples took ~20 ms to
 * check them on the target, inside the downtime.
 */
function pairs(max: number, second: 'number' | 'int') {
  return z.custom<Array<[number, number]>>(
    (v) => Array.isArray(v) && v.length <= max && v.every((p) => Array.isArray(p) && p.length === 2 && isIndex(p[0]) && (second === 'int' ? isIndex(p[1]) : typeof p[1] === 'number' && p[1] >= 0)),
    { message: `expected at most ${max} [index, ${second === 'int' ? 'index' : 'non-negative number'}] pairs` },
  );
}

/** At most `max` [area, partner areas (at most `partners`)] pairs, checked as `pairs` is. */
function coPairs(max: number, partners: number) {
  return z.custom<Array<[number, number[]]>>(
    (v) => Array.isArray(v) && v.length <= max && v.every((p) => Array.isArray(p) && p.length === 2 && isIndex(p[0]) && Array.isArray(p[1]) && p[1].length <= partners && (p[1] as unknown[]).every(isIndex)),
    { message: `expected at most ${max} [area, at most ${partners} partner areas] pairs` },
  );
}

export const CutoverSchema = z.object({
  /** Source-side timestamp (ms on the source's clock) when VM I/O stopped, for the report. */
  frozenAt: z.number(),
  /** Number of missing blocks: the MISSING spans sent just before this message set exactly these. */
  missing: z.number().int().nonnegative(),
  /** The hypervisor paused the VM for its switch-over (CutoverRequest): the target leaves its verification until the VM has likely resumed. */
  vmPaused: z.boolean().optional(),
  /** The source's heat map (hottest areas, decayed read/write counts) and co-read area pairs; area size in blocks. */
  heat: z.object({
    areaBlocks: z.number().int().positive(),
    reads: pairs(1 << 20, 'number'),
    writes: pairs(1 << 20, 'number').optional(),
    /** Read heat of the hottest single blocks (block, reads): the source pushes by block grain too. */
    blocks: pairs(1 << 20, 'number').optional(),
    co: coPairs(1 << 16, 16).optional(),
    /** Block → the block the VM read right after it, learned at the source (policy/block-successors.ts). */
    follows: pairs(1 << 16, 'int').optional(),
  }).optional(),
});
export type Cutover = z.infer<typeof CutoverSchema>;

export const VerifySchema = z.object({
  /** Hex Merkle root over block content ids. */
  root: z.string().regex(/^[0-9a-f]{64}$/),
  /** How many blocks the VM wrote at the target after cut-over: the WRITTEN batches sent just before this message list them. */
  targetWrites: z.number().int().nonnegative(),
  /** Time the target spent hashing after the last block arrived (subtracted from time_total). */
  hashMs: z.number().nonnegative(),
  /** Target-side counters for the report (misses, latencies, blocks by reason). */
  stats: TargetStatsSchema,
});
export type Verify = z.infer<typeof VerifySchema>;

export const DoneSchema = z.object({ verified: z.boolean(), root: z.string(), report: z.record(z.string(), z.unknown()).optional() });
export type Done = z.infer<typeof DoneSchema>;

export const AbortSchema = z.object({ reason: z.string().max(4096) });

export type Message =
  | { type: typeof MsgType.HELLO; hello: Hello }
  | { type: typeof MsgType.WELCOME; welcome: Welcome }
  | { type: typeof MsgType.ERROR; code: string; message: string }
  | { type: typeof MsgType.ACK; seq: number }
  | { type: typeof MsgType.PING; t: number }
  | { type: typeof MsgType.PONG; t: number }
  | { type: typeof MsgType.DATA; block: number; reason: DataReasonValue; data: Buffer; compressed?: boolean }
  | { type: typeof MsgType.ZERO; first: number; count: number; reason: DataReasonValue }
  | { type: typeof MsgType.FETCH; prefetch: boolean; blocks: number[] }
  | { type: typeof MsgType.CANCEL; blocks: number[] }
  | { type: typeof MsgType.OFFER; batch: number; blocks: Uint32Array; ids: Buffer }
  | { type: typeof MsgType.HAVE; batch: number; count: number; have: Uint8Array }
  | { type: typeof MsgType.REF; block: number; reason: DataReasonValue; id: Buffer }
  | { type: typeof MsgType.CUTOVER; cutover: Cutover }
  | { type: typeof MsgType.CUTOVER_DONE; servingAt: number }
  | { type: typeof MsgType.MISSING; last: boolean; span: BitmapSpan | undefined }
  | { type: typeof MsgType.WRITTEN; blocks: Uint32Array; ids: Buffer }
  | { type: typeof MsgType.VERIFY; verify: Verify }
  | { type: typeof MsgType.DONE; done: Done }
  | { type: typeof MsgType.ABORT; reason: string };

/** Messages that are acked and retransmitted after a reconnect; the rest are link-local. */
export function isSequenced(type: number): boolean {
  return type !== MsgType.ACK && type !== MsgType.PING && type !== MsgType.PONG && type !== MsgType.HELLO && type !== MsgType.WELCOME;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');

/** Encodes a message body as frame parts (block data stays a separate part: never copied). */
export function encodeMessage(m: Message): Buffer[] {
  switch (m.type) {
    case MsgType.HELLO: return [json(m.hello)];
    case MsgType.WELCOME: return [json(m.welcome)];
    case MsgType.ERROR: return [json({ code: m.code, message: m.message })];
    case MsgType.ACK: { const b = Buffer.allocUnsafe(4); b.writeUInt32BE(m.seq >>> 0); return [b]; }
    case MsgType.PING:
    case MsgType.PONG: { const b = Buffer.allocUnsafe(8); b.writeDoubleBE(m.t); return [b]; }
    case MsgType.DATA: {
      const h = Buffer.allocUnsafe(5);
      h.writeUInt32BE(m.block, 0);
      h.writeUInt8(m.reason | (m.compressed ? DATA_COMPRESSED : 0), 4);
      return [h, m.data];
    }
    case MsgType.OFFER: {
      const steps: number[] = [];
      let prev = -1;
      for (const b of m.blocks) {
        const d = b - prev - 1;
        writeVarint(steps, d >= 0 ? d * 2 : -d * 2 - 1);
        prev = b;
      }
      const h = Buffer.allocUnsafe(8 + steps.length);
      h.writeUInt32BE(m.batch >>> 0, 0);
      h.writeUInt32BE(m.blocks.length, 4);
      h.set(steps, 8);
      return [h, m.ids];
    }
    case MsgType.HAVE: {
      const h = Buffer.allocUnsafe(8);
      h.writeUInt32BE(m.batch >>> 0, 0);
      h.writeUInt32BE(m.count, 4);
      return [h, Buffer.from(m.have.buffer, m.have.byteOffset, m.have.byteLength)];
    }
    case MsgType.REF: {
      const h = Buffer.allocUnsafe(5);
      h.writeUInt32BE(m.block, 0);
      h.writeUInt8(m.reason, 4);
      return [h, m.id];
    }
    case MsgType.ZERO: {
      const b = Buffer.allocUnsafe(9);
      b.writeUInt32BE(m.first, 0);
      b.writeUInt32BE(m.count, 4);
      b.writeUInt8(m.reason, 8);
      return [b];
    }
    case MsgType.FETCH:
    case MsgType.CANCEL: {
      const b = Buffer.allocUnsafe(1 + 4 * m.blocks.length);
      b.writeUInt8(m.type === MsgType.FETCH && m.prefetch ? 1 : 0, 0);
      m.blocks.forEach((x, i) => b.writeUInt32BE(x, 1 + 4 * i));
      return [b];
    }
    case MsgType.CUTOVER: return [json(m.cutover)];
    case MsgType.CUTOVER_DONE: return [json({ servingAt: m.servingAt })];
    case MsgType.MISSING: return [Buffer.from([m.last ? 1 : 0]), ...(m.span ? encodeSpan(m.span) : [])];
    case MsgType.WRITTEN: {
      const n = m.blocks.length;
      if (n === 0 || n > MAX_WRITTEN_BLOCKS || m.ids.length !== n * CONTENT_ID_BYTES) throw new ProtocolError(`WRITTEN: ${n} blocks with ${m.ids.length} bytes of ids (1-${MAX_WRITTEN_BLOCKS} blocks, ${CONTENT_ID_BYTES} bytes each)`);
      const h = Buffer.allocUnsafe(4 + 4 * n);
      h.writeUInt32BE(n, 0);
      m.blocks.forEach((b, i) => h.writeUInt32BE(b, 4 + 4 * i));
      return [h, m.ids];
    }
    case MsgType.VERIFY: return [json(m.verify)];
    case MsgType.DONE: return [json(m.done)];
    case MsgType.ABORT: return [json({ reason: m.reason })];
  }
}

function parseJson<T>(schema: z.ZodType<T>, payload: Buffer, what: string): T {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: payload is not JSON`);
  }
  const r = schema.safeParse(v);
  if (!r.success) throw new ProtocolError(`${what}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

function need(payload: Buffer, n: number, what: string): void {
  if (payload.length < n) throw new ProtocolError(`${what}: payload of ${payload.length} bytes is too short`);
}

/** Decodes and validates one message; anything malformed is a ProtocolError (the link drops, nothing else happens). */
export function decodeMessage(type: number, payload: Buffer): Message {
  switch (type) {
    case MsgType.HELLO: return { type, hello: parseJson(HelloSchema, payload, 'HELLO') };
    case MsgType.WELCOME: return { type, welcome: parseJson(WelcomeSchema, payload, 'WELCOME') };
    case MsgType.ERROR: { const e = parseJson(ErrorSchema, payload, 'ERROR'); return { type, code: e.code, message: e.message }; }
    case MsgType.ACK: need(payload, 4, 'ACK'); return { type, seq: payload.readUInt32BE(0) };
    case MsgType.PING:
    case MsgType.PONG: need(payload, 8, 'PING'); return { type, t: payload.readDoubleBE(0) };
    case MsgType.DATA: {
      need(payload, 5, 'DATA');
      const flags = payload.readUInt8(4);
      const reason = flags & ~DATA_COMPRESSED;
      if (reason > DataReason.PUSH) throw new ProtocolError(`DATA: unknown reason ${reason}`);
      const compressed = (flags & DATA_COMPRESSED) !== 0;
      return { type, block: payload.readUInt32BE(0), reason: reason as DataReasonValue, data: payload.subarray(5), ...(compressed ? { compressed } : {}) };
    }
    case MsgType.OFFER: {
      need(payload, 8, 'OFFER');
      const batch = payload.readUInt32BE(0);
      const count = payload.readUInt32BE(4);
      if (count === 0 || count > MAX_OFFER_BLOCKS) throw new ProtocolError(`OFFER: ${count} blocks (1-${MAX_OFFER_BLOCKS} allowed)`);
      const blocks = new Uint32Array(count);
      let p = 8;
      let prev = -1;
      for (let i = 0; i < count; i++) {
        let v = 0;
        let mul = 1;
        for (let k = 0; ; k++) {
          if (p >= payload.length || k > 5) throw new ProtocolError('OFFER: block list is truncated or malformed');
          const byte = payload[p++]!;
          v += (byte & 0x7f) * mul;
          mul *= 128;
          if (byte < 0x80) break;
        }
        const d = v % 2 === 0 ? v / 2 : -(v + 1) / 2;
        const b = prev + 1 + d;
        if (!Number.isInteger(b) || b < 0 || b > 0xffffffff) throw new ProtocolError(`OFFER: block number ${b} out of range`);
        blocks[i] = b;
        prev = b;
      }
      if (payload.length - p !== count * OFFER_ID_BYTES) throw new ProtocolError(`OFFER: ${payload.length - p} bytes of ids for ${count} blocks`);
      return { type, batch, blocks, ids: payload.subarray(p) };
    }
    case MsgType.HAVE: {
      need(payload, 8, 'HAVE');
      const batch = payload.readUInt32BE(0);
      const count = payload.readUInt32BE(4);
      if (count === 0 || count > MAX_OFFER_BLOCKS) throw new ProtocolError(`HAVE: ${count} blocks (1-${MAX_OFFER_BLOCKS} allowed)`);
      if (payload.length !== 8 + Math.ceil(count / 8)) throw new ProtocolError(`HAVE: ${payload.length} bytes do not hold a bitmap of ${count}`);
      return { type, batch, count, have: new Uint8Array(payload.subarray(8)) };
    }
    case MsgType.REF: {
      if (payload.length !== 5 + CONTENT_ID_BYTES) throw new ProtocolError(`REF: payload of ${payload.length} bytes (expected ${5 + CONTENT_ID_BYTES})`);
      const reason = payload.readUInt8(4);
      if (reason > DataReason.PUSH) throw new ProtocolError(`REF: unknown reason ${reason}`);
      return { type, block: payload.readUInt32BE(0), reason: reason as DataReasonValue, id: payload.subarray(5) };
    }
    case MsgType.ZERO: {
      need(payload, 9, 'ZERO');
      const reason = payload.readUInt8(8);
      if (reason > DataReason.PUSH) throw new ProtocolError(`ZERO: unknown reason ${reason}`);
      return { type, first: payload.readUInt32BE(0), count: payload.readUInt32BE(4), reason: reason as DataReasonValue };
    }
    case MsgType.FETCH:
    case MsgType.CANCEL: {
      need(payload, 1, 'FETCH/CANCEL');
      if ((payload.length - 1) % 4 !== 0) throw new ProtocolError('FETCH/CANCEL: block list is not a whole number of u32');
      const blocks: number[] = [];
      for (let p = 1; p < payload.length; p += 4) blocks.push(payload.readUInt32BE(p));
      return type === MsgType.FETCH ? { type, prefetch: payload[0] === 1, blocks } : { type, blocks };
    }
    case MsgType.CUTOVER: return { type, cutover: parseJson(CutoverSchema, payload, 'CUTOVER') };
    case MsgType.MISSING: {
      need(payload, 1, 'MISSING');
      const flags = payload.readUInt8(0);
      if (flags > 1) throw new ProtocolError(`MISSING: unknown flags ${flags}`);
      const last = flags === 1;
      if (payload.length === 1 && !last) throw new ProtocolError('MISSING: a span is required unless it is the last');
      return { type, last, span: payload.length === 1 ? undefined : decodeSpan(payload.subarray(1), 'MISSING') };
    }
    case MsgType.WRITTEN: {
      need(payload, 4, 'WRITTEN');
      const n = payload.readUInt32BE(0);
      if (n === 0 || n > MAX_WRITTEN_BLOCKS) throw new ProtocolError(`WRITTEN: ${n} blocks (1-${MAX_WRITTEN_BLOCKS} allowed)`);
      if (payload.length !== 4 + n * (4 + CONTENT_ID_BYTES)) throw new ProtocolError(`WRITTEN: payload of ${payload.length} bytes does not hold ${n} blocks and ids`);
      const blocks = new Uint32Array(n);
      for (let i = 0; i < n; i++) {
        blocks[i] = payload.readUInt32BE(4 + 4 * i);
        if (i > 0 && blocks[i]! <= blocks[i - 1]!) throw new ProtocolError('WRITTEN: blocks are not in ascending order');
      }
      return { type, blocks, ids: payload.subarray(4 + 4 * n) };
    }
    case MsgType.CUTOVER_DONE: {
      const v = parseJson(z.object({ servingAt: z.number() }), payload, 'CUTOVER_DONE');
      return { type, servingAt: v.servingAt };
    }
    case MsgType.VERIFY: return { type, verify: parseJson(VerifySchema, payload, 'VERIFY') };
    case MsgType.DONE: return { type, done: parseJson(DoneSchema, payload, 'DONE') };
    case MsgType.ABORT: return { type, reason: parseJson(AbortSchema, payload, 'ABORT').reason };
    default:
      throw new ProtocolError(`unknown message type ${type}`);
  }
}
