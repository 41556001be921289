import type { Disk } from '../block/disk.ts';
import { Channel, Priority, type PriorityValue } from '../wire/channel.ts';
import { DataReason, MAX_OFFER_BLOCKS, MsgType, OFFER_ID_BYTES, type DataReasonValue, type Message } from '../wire/messages.ts';
import { BlockCompressor } from '../wire/block-codec.ts';
import { chooseCompressionLevel } from '../policy/compression-level.ts';
import type { Runtime } from '../runtime.ts';
import type { Encoded } from '../workers/block-work.ts';

/** Ids offered per OFFER frame (36 bytes each on the wire). */
const OFFER_BATCH = 512;
/** A partly filled OFFER goes out after this long, so answers never wait on a slow scan. */
const OFFER_MAX_AGE_MS = 20;
/** Offered blocks awaiting an answer (ids only are held: ~40 bytes each). */
const MAX_PENDING_OFFERS = 8192;
/**
 * Content ids the source remembers the target holding (about 140 bytes each with the block → id
 * map: at most ~140 MiB, so an agent stays within 512 MiB on a terabyte image; the oldest go first).
 */
const MAX_KNOWN_IDS = 1_000_000;
/** Blocks between compression-level decisions. */
const LEVEL_EVERY = 128;

/** What the sender counts beside the channel's ledger (which counts the blocks by the form they travel in). */
export interface SenderCounts {
  replicaBlocks: number;
  offeredBlocks: number;
  demandBlocks: number;
  prefetchBlocks: number;
  pushBlocks: number;
  stopCopyBlocks: number;
}

/** The sender takes time, content ids, compression and block buffers from the runtime it runs on. */
export interface ContentSenderOptions extends Pick<Runtime, 'clock' | 'content' | 'codec' | 'allocBlock' | 'work'> {
  channel: Channel;
  image: Disk;
  blockSize: number;
  /** Send content ids instead of data when the target has the content (REF/OFFER). */
  dedup: boolean;
  /** zstd per DATA frame. */
  compress: boolean;
  counts: SenderCounts;
  /** Link speed for the compression-level policy (bytes/s). */
  linkBytesPerSec: () => number;
}

interface OfferBatch {
  blocks: number[];
  ids: Buffer[];
  /** Send generation of each block when offered. */
  gens: number[];
  /** Full-id keys (the wire carries a prefix). */
  keys: string[];
}

/**
 * Puts blocks on the link in the cheapest correct form: ZERO for zero blocks,
 * REF (32-byte id) for content the target already holds, OFFER for content it
 * may hold locally (answered by HAVE; blocks it lacks follow as DATA), and DATA
 * (zstd-compressed when that saves) for the rest. Everything that sets a
 * block's content at the target goes through the bulk lane in send order, so
 * a later send of a block always lands after an earlier one.
 */
export class ContentSender {
  /** Set once the target says it has local content worth offering ids for. */
  offersEnabled = false;
  /** Content the target holds (acked), by id → the block that holds it there. */
  private readonly known = new Map<string, number>();
  /** Block → id it holds at the target, to forget an id when its block is overwritten. */
  private readonly heldBy = new Map<number, string>();
  /**
   * Generation of the send of a block whose ack or HAVE is still awaited; a newer send of the block
   * replaces its entry, so an ack or answer for an older send registers nothing. Only blocks in flight
   * have an entry (bounded by the window and MAX_PENDING_OFFERS), never one per block of the image.
   */
  private readonly awaited = new Map<number, number>();
  private generation = 0;
  private batch: OfferBatch = { blocks: [], ids: [], gens: [], keys: [] };
  private batchStartedAt = 0;
  private nextBatch = 1;
  private readonly pending = new Map<number, OfferBatch>();
  private pendingCount = 0;
  /** Offered block → batch; a write to it meanwhile makes the offer stale. */
  private readonly offeredIn = new Map<number, number>();
  private readonly stale = new Set<number>();
  /** Answered "lacking": these blocks go out as DATA next. */
  private ready: number[] = [];
  private answered: (() => void) | undefined;
  private readonly compressor: BlockCompressor | undefined;
  private levelCountdown = LEVEL_EVERY;
  private aborted: Error | undefined;
  /** Set by interrupt(): a cut-over is coming, nothing waits for offers any more. */
  private interrupted = false;

  constructor(private readonly o: ContentSenderOptions) {
    if (o.compress) {
      // Start at the level the link hint affords (prior CPU speed); measurements refine it.
      const level = chooseCompressionLevel({ linkBytesPerSec: o.linkBytesPerSec(), measuredBytesPerSec: undefined, currentLevel: 1, ratio: 1 });
      this.compressor = new BlockCompressor(level, o.codec);
    }
  }

  get compressionLevel(): number | undefined {
    return this.compressor?.level;
  }

  /** Offers or reads of these blocks are outdated: the VM wrote them. */
  markDirty(b: number): void {
    if (this.offeredIn.has(b)) this.stale.add(b);
  }

  /**
   * Starts the costly part of sending `data` (its content id, its zstd) on the
   * runtime's block work (worker threads for agents), so an engine can read
   * and prepare the next blocks while this one is still being hashed; hand
   * the result to send(). Undefined for a zero block, which needs neither.
   * `data` is handed over: use only what the promise gives back.
   */
  prepare(data: Buffer, reason: DataReasonValue): Promise<Encoded> | undefined {
    if (this.o.content.isZero(data)) return undefined;
    // A block that will be offered first needs its id only; its bytes, if lacking, are read again later.
    const offerFirst = this.o.dedup && this.offersEnabled && (reason === DataReason.BULK || reason === DataReason.DIRTY);
    // One trip does both: a block that turns out to be a REF wastes a compression on a worker, which
    // costs less than a second trip through the event loop for every block.
    return this.o.work.encode({ block: data, hash: this.o.dedup, level: this.compressor && !offerFirst ? this.compressor.level : 0 });
  }

  /**
   * Sends block `b` whose current bytes are `data` (or, `prepared`, the
   * result of prepare(data)). Waits for room in the bulk lane when it sends
   * bulk data. `allowRef` false forces bytes: the answer to a fetch must not
   * be a reference (the target fetches when one fails).
   */
  async send(b: number, data: Buffer, reason: DataReasonValue, prio: PriorityValue, allowRef = true, prepared: Promise<Encoded> | undefined | 'unprepared' = 'unprepared'): Promise<void> {
    const { channel } = this.o;
    const work = prepared === 'unprepared' ? this.prepare(data, reason) : prepared;
    if (prio === Priority.BULK && this.ready.length) await this.sendReady();
    // Whatever block b held at the target is about to be replaced. The generation is taken now: a
    // later send of b started while this one waits for its work makes this one's ack register nothing.
    const g = this.overwritten(b);
    if (!work) {
      this.settle(b, g);
      channel.send({ type: MsgType.ZERO, first: b, count: 1, reason }, prio, { tag: { kind: 'zero', first: b, count: 1 } });
      return;
    }
    const r = await work;
    this.checkAborted();
    if (!this.o.dedup || !r.id) {
      this.settle(b, g);
      return this.sendData(b, r, reason, prio);
    }
    const id = r.id;
    const key = id.toString('base64');
    if (allowRef && this.known.has(key)) {
      channel.send({ type: MsgType.REF, block: b, reason, id }, prio, { onAck: this.onApplied(b, key, g), tag: { kind: 'ref', block: b } });
      return;
    }
    if (this.offersEnabled && (reason === DataReason.BULK || reason === DataReason.DIRTY)) {
      await this.offer(b, id, key, g);
      return;
    }
    this.sendData(b, r, reason, prio, key, g);
  }

  /** The target's answer to an OFFER. */
  handleHave(m: Extract<Message, { type: typeof MsgType.HAVE }>): void {
    const batch = this.pending.get(m.batch);
    if (!batch) return; // abandoned at cut-over
    this.pending.delete(m.batch);
    this.pendingCount -= batch.blocks.length;
    batch.blocks.forEach((b, i) => {
      if (this.offeredIn.get(b) === m.batch) this.offeredIn.delete(b);
      const wasStale = this.stale.delete(b);
      const has = i < m.count && (m.have[i >> 3]! & (1 << (i & 7))) !== 0;
      if (has) {
        this.o.counts.replicaBlocks++;
        if (!wasStale && this.awaited.get(b) === batch.gens[i]) this.remember(b, batch.keys[i]!);
      } else if (!wasStale) {
        this.ready.push(b);
      }
      // Stale and lacking: the dirty set already has it; the next round sends it.
      if (this.awaited.get(b) === batch.gens[i]) this.awaited.delete(b);
    });
    this.answered?.();
  }

  /**
   * Sends any partial OFFER and waits until every offered block is answered and every lacking one sent,
   * or until interrupt() (a cut-over request: abandonPending hands what is left back as missing).
   */
  async drain(): Promise<void> {
    this.flushOffers();
    while ((this.pending.size || this.ready.length) && !this.interrupted) {
      this.checkAborted();
      if (this.ready.length) await this.sendReady();
      else await this.nextAnswer();
    }
  }

  /**
   * A cut-over was requested: waits for offer answers end now, and lacking blocks are no longer sent
   * (the hold takes them back through abandonPending). Without this the hold waited for the whole
   * round of offers: seconds on a resumed session, where every block is offered.
   */
  interrupt(): void {
    this.interrupted = true;
    this.answered?.();
  }

  /** Cut-over: offers still unanswered, and lacking blocks not yet sent, are handed back as missing. */
  abandonPending(): number[] {
    this.flushOffers();
    const out = [...this.ready];
    for (const batch of this.pending.values()) {
      out.push(...batch.blocks);
      batch.blocks.forEach((b, i) => { if (this.awaited.get(b) === batch.gens[i]) this.awaited.delete(b); });
    }
    this.pending.clear();
    this.pendingCount = 0;
    this.offeredIn.clear();
    this.stale.clear();
    this.ready = [];
    this.answered?.();
    return out;
  }

  abort(err: Error): void {
    this.aborted = err;
    this.answered?.();
  }

  private async offer(b: number, id: Buffer, key: string, g: number): Promise<void> {
    while (this.pendingCount + this.batch.blocks.length >= MAX_PENDING_OFFERS && !this.interrupted) {
      this.flushOffers();
      if (this.ready.length) await this.sendReady();
      else await this.nextAnswer();
      this.checkAborted();
    }
    if (this.batch.blocks.length === 0) this.batchStartedAt = this.o.clock.now();
    // A block offered twice (dirtied while the first offer was out): the first offer is stale now.
    if (this.offeredIn.has(b)) this.stale.add(b);
    this.batch.blocks.push(b);
    this.batch.ids.push(id.subarray(0, OFFER_ID_BYTES));
    this.batch.gens.push(g);
    this.batch.keys.push(key);
    this.o.counts.offeredBlocks++;
    if (this.batch.blocks.length >= Math.min(OFFER_BATCH, MAX_OFFER_BLOCKS) || this.o.clock.now() - this.batchStartedAt >= OFFER_MAX_AGE_MS) this.flushOffers();
  }

  flushOffers(): void {
    const batch = this.batch;
    if (batch.blocks.length === 0) return;
    this.batch = { blocks: [], ids: [], gens: [], keys: [] };
    const no = this.nextBatch++;
    this.pending.set(no, batch);
    this.pendingCount += batch.blocks.length;
    for (const b of batch.blocks) {
      this.offeredIn.set(b, no);
    }
    // The later of two offers for one block is the one that counts; its staleness starts fresh.
    for (const b of batch.blocks) this.stale.delete(b);
    this.o.channel.send({ type: MsgType.OFFER, batch: no, blocks: Uint32Array.from(batch.blocks), ids: Buffer.concat(batch.ids) }, Priority.BULK, { tag: { kind: 'offer', batch: no } });
  }

  private async sendReady(): Promise<void> {
    const { image, blockSize, channel } = this.o;
    while (this.ready.length && !this.interrupted) {
      await channel.waitBulkRoom();
      this.checkAborted();
      const b = this.ready.shift()!;
      if (this.offeredIn.has(b)) continue; // offered again since: that offer decides
      const len = Math.min(blockSize, image.size - b * blockSize);
      const data = this.o.allocBlock(len);
      await image.read(b * blockSize, data);
      if (this.o.content.isZero(data)) {
        channel.send({ type: MsgType.ZERO, first: b, count: 1, reason: DataReason.BULK }, Priority.BULK, { tag: { kind: 'zero', first: b, count: 1 } });
        continue;
      }
      // Hash what was read, not what was offered: a write may have raced the read.
      const g = this.overwritten(b);
      const r = await this.o.work.encode({ block: data, hash: true, level: this.compressor?.level ?? 0 });
      this.checkAborted();
      this.sendData(b, r, DataReason.BULK, Priority.BULK, r.id!.toString('base64'), g);
    }
  }

  /** Puts a prepared block on the link as DATA: compressed when its work compressed it. */
  private sendData(b: number, e: Encoded, reason: DataReasonValue, prio: PriorityValue, key?: string, g?: number): void {
    const { counts, channel } = this.o;
    if (reason === DataReason.DEMAND) counts.demandBlocks++;
    else if (reason === DataReason.PREFETCH) counts.prefetchBlocks++;
    else if (reason === DataReason.PUSH) counts.pushBlocks++;
    else if (reason === DataReason.STOP_COPY) counts.stopCopyBlocks++;
    const onAck = key && g !== undefined ? this.onApplied(b, key, g) : undefined;
    const data = e.block;
    const c = this.compressor;
    if (!c) {
      channel.send({ type: MsgType.DATA, block: b, reason, data }, prio, { onAck, tag: { kind: 'data', block: b, rawBytes: data.length, wireBytes: data.length, compressed: false } });
      return;
    }
    if (--this.levelCountdown <= 0) this.adjustLevel();
    const r = c.account(data.length, e.payload ?? data, e.payload !== undefined, e.ms);
    channel.send({ type: MsgType.DATA, block: b, reason, data: r.payload, compressed: r.compressed }, prio, { onAck, tag: { kind: 'data', block: b, rawBytes: data.length, wireBytes: r.payload.length, compressed: r.compressed } });
  }

  private adjustLevel(): void {
    const c = this.compressor!;
    this.levelCountdown = LEVEL_EVERY;
    const st = c.stats;
    const measured = st.ms > 0 ? (st.rawBytes / st.ms) * 1000 : undefined;
    const ratio = st.wireBytes > 0 ? st.rawBytes / st.wireBytes : 1;
    const level = chooseCompressionLevel({ linkBytesPerSec: this.o.linkBytesPerSec(), measuredBytesPerSec: measured, currentLevel: c.level, ratio });
    if (level !== c.level) {
      c.level = level;
      // Speed samples belong to one level.
      st.ms = 0;
      st.rawBytes = 0;
      st.wireBytes = 0;
    }
  }

  /** A send for block b is under way: forget the content b held at the target, start a new generation. */
  private overwritten(b: number): number {
    const g = ++this.generation;
    this.awaited.set(b, g);
    const old = this.heldBy.get(b);
    if (old !== undefined) {
      this.heldBy.delete(b);
      if (this.known.get(old) === b) this.known.delete(old);
    }
    return g;
  }

  /** Send `g` of b will register nothing (no ack awaited): its entry goes, so `awaited` holds only sends in flight. */
  private settle(b: number, g: number): void {
    if (this.awaited.get(b) === g) this.awaited.delete(b);
  }

  /** Ack callback: once the target has applied this send (generation `g`, and nothing newer went out for b), it holds `key` at b. */
  private onApplied(b: number, key: string, g: number): () => void {
    return () => {
      if (this.awaited.get(b) !== g) return;
      this.awaited.delete(b);
      this.remember(b, key);
    };
  }

  private remember(b: number, key: string): void {
    if (!this.known.has(key) && this.known.size >= MAX_KNOWN_IDS) {
      const [oldKey, oldBlock] = this.known.entries().next().value!;
      this.known.delete(oldKey);
      if (this.heldBy.get(oldBlock) === oldKey) this.heldBy.delete(oldBlock);
    }
    if (!this.known.has(key)) this.known.set(key, b);
    this.heldBy.set(b, key);
  }

  private nextAnswer(): Promise<void> {
    return new Promise((r) => {
      this.answered = () => {
        this.answered = undefined;
        r();
      };
    });
  }

  private checkAborted(): void {
    if (this.aborted) throw this.aborted;
  }
}
