/**
 * The plan probe: before a migration, `flimcd plan --target ADDR` asks the
 * target agent which of the image's blocks it could build from what it
 * already holds (its own old copy of the image, its replica index), without
 * migrating anything. It is a short session on the agents' own link (same
 * TLS/PSK credentials): HELLO with purpose 'plan', WELCOME, then OFFER
 * batches of 128-bit content ids answered by HAVE bitmaps, exactly as a
 * migration's dedup asks them, through the same LocalContent lookup (every
 * candidate is re-hashed; nothing is written to the target image).
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { Channel, Priority } from '../wire/channel.ts';
import { SocketTransport } from '../wire/socket-transport.ts';
import { connectLink, type LinkSecurity } from '../wire/secure-link.ts';
import { readMessage, writeMessage } from '../wire/handshake.ts';
import { MAX_OFFER_BLOCKS, MsgType, OFFER_ID_BYTES, WIRE_VERSION, type Message } from '../wire/messages.ts';
import { realClock } from '../util/clock.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { ErrorCode, FlimcdError, IoError, ProtocolError, targetRefusalCode, WrongPeerError } from '../errors.ts';
import type { LocalContent } from './local-content.ts';
import { DEFAULT_CONTENT_ID_FORMAT, type ContentIdFormat } from '../content/content-id.ts';

/** Lookups one OFFER runs at once at the target (each reads and hashes one block). */
const LOOKUP_CONCURRENCY = 16;
/** OFFER batches the plan keeps unanswered at once (bounds both sides' queues). */
const BATCHES_IN_FLIGHT = 4;
/** A probe with no answer for this long has failed. */
const ANSWER_TIMEOUT_MS = 120_000;
/** In the target's WELCOME: it took the HELLO as a plan probe (an older agent would have begun a migration). */
const PLAN_FEATURE = 'plan';

/**
 * Target side: answers one plan probe on `socket` (HELLO already read) from
 * `local`, until the plan closes the link. Resolves when the link is gone.
 */
export function servePlanProbe(o: { socket: net.Socket; session: string; rest: Buffer; local: LocalContent | undefined; blockSize: number; incarnation: string; log: Logger; contentIds: ContentIdFormat }): Promise<{ offered: number; have: number }> {
  const { local } = o;
  const stats = { offered: 0, have: 0 };
  // One OFFER at a time (its lookups run LOOKUP_CONCURRENCY wide): memory stays bounded whatever the peer sends.
  let previous: Promise<void> = Promise.resolve();
  return new Promise((resolve) => {
    const channel: Channel = new Channel({
      clock: realClock,
      onMessage: (m: Message) => (previous = previous.then(() => answer(m))),
      onDisconnect: () => {
        channel.close();
        resolve(stats);
      },
    });
    const answer = async (m: Message): Promise<void> => {
      if (m.type !== MsgType.OFFER) throw new ProtocolError(`a plan probe carries OFFER only, got message type ${m.type}`);
      const have = new Uint8Array(Math.ceil(m.blocks.length / 8));
      let next = 0;
      const worker = async (buf: Buffer) => {
        for (let i = next++; i < m.blocks.length; i = next++) {
          const id = m.ids.subarray(OFFER_ID_BYTES * i, OFFER_ID_BYTES * (i + 1));
          const found = local ? await local.findLocal(m.blocks[i]!, id, buf).catch(() => undefined) : undefined;
          if (found) have[i >> 3]! |= 1 << (i & 7);
        }
      };
      await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, m.blocks.length) }, () => worker(Buffer.allocUnsafe(o.blockSize))));
      stats.offered += m.blocks.length;
      for (let i = 0; i < m.blocks.length; i++) if (have[i >> 3]! & (1 << (i & 7))) stats.have++;
      channel.send({ type: MsgType.HAVE, batch: m.batch, count: m.blocks.length, have }, Priority.CONTROL);
    };
    writeMessage(o.socket, { type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: o.session, features: local ? [PLAN_FEATURE, 'offer'] : [PLAN_FEATURE], processedSeq: 0, incarnation: o.incarnation, resume: 'new', contentIds: o.contentIds } });
    channel.attach(new SocketTransport(o.socket), 0, o.rest);
  });
}

export interface TargetHoldingsQuery {
  to: Address;
  security: LinkSecurity;
  imageSize: number;
  blockSize: number;
  /** The image's non-zero blocks, and their content ids' first 128 bits (OFFER_ID_BYTES each, in the same order). */
  blocks: Uint32Array;
  ids: Buffer;
  /** The ids' format (default SHA-256); a target of another format refuses the probe. */
  contentIds?: ContentIdFormat;
  connectTimeoutMs?: number;
}

/**
 * Plan side: asks the target agent at `to` which of `blocks` it holds.
 * Returns those block numbers, ascending. A target that refuses (busy, wrong
 * version), does not speak the probe or does not answer is an error naming it.
 */
export async function askTargetHoldings(q: TargetHoldingsQuery): Promise<number[]> {
  const where = formatAddress(q.to);
  if (q.ids.length !== q.blocks.length * OFFER_ID_BYTES) throw new RangeError(`${q.blocks.length} blocks need ${q.blocks.length * OFFER_ID_BYTES} id bytes, got ${q.ids.length}`);
  let socket: net.Socket;
  try {
    socket = await connectLink(q.to, q.security, { timeoutMs: q.connectTimeoutMs ?? 30_000 });
  } catch (e) {
    if (e instanceof WrongPeerError) throw new WrongPeerError(`--target: ${e.message}`, e.speaks);
    throw new IoError(`--target: cannot reach the target agent at ${where}: ${(e as Error).message}`, { cause: e });
  }
  try {
    writeMessage(socket, {
      type: MsgType.HELLO,
      hello: { version: WIRE_VERSION, session: `plan-${randomBytes(6).toString('hex')}`, imageSize: q.imageSize, blockSize: q.blockSize, algorithm: 'plan', features: ['dedup'], processedSeq: 0, purpose: 'plan', contentIds: q.contentIds ?? DEFAULT_CONTENT_ID_FORMAT },
    });
    const { message, rest } = await readMessage(socket, 30_000).catch((e: Error) => {
      if (e instanceof WrongPeerError) throw new WrongPeerError(`--target: ${where} is ${e.message}`, e.speaks);
      throw new IoError(`--target: the agent at ${where} did not answer: ${e.message}`, { cause: e });
    });
    if (message.type === MsgType.ERROR) throw new FlimcdError(`--target: the agent at ${where} refused the plan probe: ${message.message}`, targetRefusalCode(message.code));
    if (message.type !== MsgType.WELCOME) throw new ProtocolError(`--target: the agent at ${where} answered HELLO with message type ${message.type}`);
    // An agent that took this for a migration must not be sent anything more.
    if (!message.welcome.features.includes(PLAN_FEATURE)) throw new FlimcdError(`--target: the agent at ${where} does not answer plan probes (an older flimcd); it may have opened a migration session: check its state directory`, ErrorCode.TARGET_NO_PLAN);
    // No local content there (no old image, no index): nothing to ask.
    if (!message.welcome.features.includes('offer') || q.blocks.length === 0) return [];
    return await offerAll(socket, rest, q, where);
  } finally {
    socket.destroy();
  }
}

async function offerAll(socket: net.Socket, rest: Buffer, q: TargetHoldingsQuery, where: string): Promise<number[]> {
  const batches = Math.ceil(q.blocks.length / MAX_OFFER_BLOCKS);
  const held: number[] = [];
  const waiting = new Map<number, (have: Uint8Array) => void>();
  let failed: ((e: Error) => void) | undefined;
  const gone = new Promise<never>((_, reject) => (failed = reject));
  gone.catch(() => {});
  const channel = new Channel({
    clock: realClock,
    onMessage: (m) => {
      if (m.type !== MsgType.HAVE) throw new ProtocolError(`a plan probe expects HAVE, got message type ${m.type}`);
      const w = waiting.get(m.batch);
      if (!w) throw new ProtocolError(`HAVE for batch ${m.batch}, which was not asked`);
      waiting.delete(m.batch);
      w(m.have);
    },
    onDisconnect: (err) => failed?.(new IoError(`--target: the link to ${where} was lost during the plan probe${err ? `: ${err.message}` : ''}`)),
  });
  channel.attach(new SocketTransport(socket), 0, rest);
  try {
    const ask = async (k: number) => {
      const first = k * MAX_OFFER_BLOCKS;
      const blocks = q.blocks.subarray(first, Math.min(q.blocks.length, first + MAX_OFFER_BLOCKS));
      const ids = q.ids.subarray(first * OFFER_ID_BYTES, (first + blocks.length) * OFFER_ID_BYTES);
      const answer = new Promise<Uint8Array>((res) => waiting.set(k, res));
      channel.send({ type: MsgType.OFFER, batch: k, blocks, ids }, Priority.BULK);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new IoError(`--target: the agent at ${where} did not answer an OFFER within ${ANSWER_TIMEOUT_MS / 1000} s`)), ANSWER_TIMEOUT_MS);
      });
      try {
        const have = await Promise.race([answer, gone, timeout]);
        for (let i = 0; i < blocks.length; i++) if (have[i >> 3]! & (1 << (i & 7))) held.push(blocks[i]!);
      } finally {
        clearTimeout(timer);
      }
    };
    // At most BATCHES_IN_FLIGHT unanswered batches: a sliding window over the batches.
    let next = 0;
    const lane = async () => {
      for (let k = next++; k < batches; k = next++) await ask(k);
    };
    await Promise.all(Array.from({ length: Math.min(BATCHES_IN_FLIGHT, batches) }, lane));
  } finally {
    failed = undefined;
    channel.close();
  }
  return held.sort((a, b) => a - b);
}
