import type { Logger } from 'pino';
import type { GateDisk } from '../block/filters/gate.ts';
import type { PostcopyDisk } from '../block/filters/postcopy.ts';
import { Bitmap } from '../util/bitmap.ts';
import { Channel, Priority } from '../wire/channel.ts';
import { DataReason, MAX_WRITTEN_BLOCKS, MsgType, OFFER_ID_BYTES, type Cutover, type Message } from '../wire/messages.ts';
import { bitmapSpans } from '../wire/bitmap-span.ts';
import { imageRoot } from './image-root.ts';
import type { TargetStats } from '../wire/target-stats.ts';
import type { Features } from '../policy/algorithm.ts';
import type { PrefetchConfig } from '../policy/prefetch.ts';
import { Prefetcher } from './prefetcher.ts';
import { heatFromHandoff } from './heat-handoff.ts';
import type { Runtime } from '../runtime.ts';
import { ErrorCode, FlimcdError, ProtocolError } from '../errors.ts';
import type { Phase } from './report.ts';
import type { LocalContent, Found } from './local-content.ts';
import type { RemoteHit } from './remote-content.ts';
import { BlockDecompressor } from '../wire/block-codec.ts';
import { Semaphore } from '../util/semaphore.ts';
import { sleep } from '../util/clock.ts';

/** The engine takes time, content ids, decompression and block buffers from the runtime it runs on. */
export interface TargetEngineOptions extends Pick<Runtime, 'clock' | 'content' | 'codec' | 'allocBlock' | 'work' | 'cpuSeconds'> {
  /** The target image wrapped for post-copy; the VM's export serves it (through `gate`). */
  disk: PostcopyDisk;
  /** Holds the VM's I/O at the target until cut-over. */
  gate: GateDisk;
  channel: Channel;
  log: Logger;
  onPhase?: (phase: Phase) => void;
  /** Content the target can produce locally (dedup); without it OFFER and REF cannot be served. */
  local?: LocalContent;
  /** Optimizations the source asked for that this side takes part in (prefetch). */
  features?: Partial<Features>;
  prefetch?: Partial<PrefetchConfig>;
  /**
   * Called at cut-over once everything sent before it is applied, before the
   * VM is served here: the agent makes the image (`flushImage`) and the
   * missing-block map durable, in whatever order its records need (it may
   * overlap the two). Without it the engine only flushes the image.
   */
  onCutover?: (missing: Bitmap, flushImage: () => Promise<void>) => Promise<void>;
  /**
   * Pre-copy writes the image through the page cache; left alone the kernel
   * holds most of it dirty (writeback starts at 10 % of memory or after 30 s)
   * and the cut-over's flush writes hundreds of MiB while the VM is frozen.
   * After this many bytes applied the engine starts a flush in the background
   * (one at a time) so the cut-over flushes only the tail. 0 turns it off.
   */
  backgroundFlushBytes?: number;
  /**
   * The session continues in post-copy on a new channel (a side restarted):
   * `disk` is already active; fetches still awaited are asked again.
   */
  resumePostcopy?: boolean;
}

export interface TargetResult {
  verified: boolean;
  root: string;
  stats: TargetStats;
}

/** 32 MiB: at 1 Gbit/s about a quarter second of pre-copy, so the cut-over flush is small on any WAN. */
const DEFAULT_BACKGROUND_FLUSH_BYTES = 8 << 20;
/**
 * After a cut-over inside a hypervisor's switch-over, the hypervisor still has to send the device
 * state and resume the VM: hashing the whole image at once would take the CPU from that (a 256 MiB
 * image's hash held a TCG guest's resume up by 200 ms on 2 cores). Verification is not urgent.
 */
const VERIFY_AFTER_SWITCHOVER_MS = 1000;
/** Messages that put content into blocks (or offer it). */
const CARRIES_BLOCKS: ReadonlySet<number> = new Set([MsgType.DATA, MsgType.ZERO, MsgType.REF, MsgType.OFFER]);

/** The blocks of a DATA or ZERO sent in answer to a fetch (first, count); undefined for anything else. */
function demandAnswerBlocks(m: Message): [first: number, count: number] | undefined {
  if (m.type === MsgType.DATA && m.reason === DataReason.DEMAND) return [m.block, 1];
  if (m.type === MsgType.ZERO && m.reason === DataReason.DEMAND) return [m.first, m.count];
  return undefined;
}

const REASONS = Object.fromEntries(Object.entries(DataReason).map(([k, v]) => [v, k.toLowerCase()])) as Record<number, string>;

/**
 * The target side: applies data as it arrives (per block in arrival order),
 * takes over the VM at cut-over, then fills the missing blocks from pushes and
 * on-demand fetches, and proves the result with a Merkle root.
 */
export class TargetEngine {
  private phase: Phase = 'precopy';
  /** Last apply per block, so two sends of one block land in the order they were sent. */
  private readonly chains = new Map<number, Promise<unknown>>();
  /** Range applies (ZERO) still running: kept as ranges, not per block, since one can cover a terabyte of holes. */
  private readonly ranges = new Set<{ first: number; end: number; p: Promise<unknown> }>();
  /** The missing map the source sends in MISSING spans ahead of CUTOVER. */
  private cutoverMissing: Bitmap | undefined;
  private readonly outstanding = new Set<Promise<unknown>>();
  private readonly received: Record<string, number> = {};
  private receivedBytes = 0;
  private unflushedBytes = 0;
  private backgroundFlush: Promise<void> | undefined;
  private servingAt: number | undefined;
  /** With the VM paused for a hypervisor's switch-over, the whole-image hash waits until then (VERIFY_AFTER_SWITCHOVER_MS). */
  private verifyNotBefore: number | undefined;
  private done: ((r: TargetResult) => void) | undefined;
  private failed: ((e: Error) => void) | undefined;
  readonly result: Promise<TargetResult>;
  private readonly n: number;
  private readonly blockDecoder: BlockDecompressor;
  /** Local reads and hashes for OFFER/REF run at most this many at once (each holds a block buffer). */
  private readonly localWork = new Semaphore(8);
  /** Blocks re-asked from the source because a reference could not be resolved here (pre-copy). */
  private readonly refetching = new Map<number, () => void>();
  private readonly dedupStats = { refBlocks: 0, refFromReceived: 0, refFromLocal: 0, refFallback: 0, offered: 0, offerHave: 0, compressedBlocks: 0 };
  private prefetcher: Prefetcher | undefined;
  private cutoverRunning: Promise<void> | undefined;
  /** Blocks whose fetch answers arrived during the cut-over (applied before the missing map). */
  private answeredInCutover: number[] = [];
  /** Block messages that arrived during the cut-over, applied in arrival order once the VM is served here. */
  private heldInCutover: Array<{ m: Message; resolve: (applied: void | Promise<void>) => void; reject: (e: Error) => void }> = [];
  private superseded = false;
  /**
   * Blocks answered "have" for a sibling's in-flight copy that had not landed when the cut-over began
   * (each with a token: a later write of the block drops it). The cut-over does not wait for them: the
   * sibling may itself be in its cut-over, waiting for content this migration claimed and receives only
   * in post-copy. They are missing here until the copy lands, or, failing that, the source's is fetched.
   */
  private readonly siblingDeferred = new Map<number, object>();
  private cutoverBegan: (() => void) | undefined;
  private readonly cutoverBegins = new Promise<'cutover'>((r) => (this.cutoverBegan = () => r('cutover')));
  /** Blocks whose content arrived (data, zero, reference, offer answered "have") in this session: pre-copy's first-pass progress. */
  private readonly arrived: Bitmap;
  /** Process CPU seconds and block-work busy seconds when the session began (VERIFY reports from here). */
  private readonly cpuAtStart: number;
  private readonly busyAtStart: number;

  constructor(private readonly o: TargetEngineOptions) {
    this.n = o.disk.blockCount;
    this.arrived = new Bitmap(this.n);
    this.cpuAtStart = o.cpuSeconds();
    this.busyAtStart = o.work.busySeconds();
    this.blockDecoder = new BlockDecompressor(o.codec);
    this.result = new Promise((resolve, reject) => {
      this.done = resolve;
      this.failed = reject;
    });
    this.result.catch(() => {});
    if (o.resumePostcopy) {
      this.phase = 'postcopy';
      this.servingAt = o.clock.now();
      // What this side still lacks, for the source to push: bounded spans, the last one flagged.
      for (const span of bitmapSpans(o.disk.missing)) o.channel.send({ type: MsgType.MISSING, last: false, span });
      o.channel.send({ type: MsgType.MISSING, last: true, span: undefined });
      const again = o.disk.pendingFetches();
      if (again.length) this.blockSource().fetch(again);
      void o.disk.whenComplete().then(() => this.finish()).catch((e) => this.failed?.(e as Error));
    }
  }

  /**
   * A new engine takes over the session (the peer restarted): this one stops
   * acting. Resolves when its pending block writes and any cut-over have settled,
   * so nothing it applies can land after what its successor applies.
   */
  async supersede(): Promise<void> {
    this.superseded = true;
    this.prefetcher?.finish();
    await this.cutoverRunning?.catch(() => {});
    while (this.outstanding.size) await Promise.allSettled([...this.outstanding]);
  }

  get currentPhase(): Phase {
    return this.phase;
  }

  status(): TargetStats {
    const d = this.o.disk;
    return {
      phase: this.phase,
      blocks: this.n,
      blockSize: d.unit,
      missingBlocks: d.isActive ? d.missing.count : undefined,
      receivedBlocks: { ...this.received },
      receivedBytes: this.receivedBytes,
      dedup: { ...this.dedupStats, local: this.o.local?.stats },
      ...d.stats,
      missP50: d.missLatency.percentile(50),
      missP99: d.missLatency.percentile(99),
      ...this.prefetcher?.stats(),
    };
  }

  /** How many blocks' content has arrived in this session (the first pass is done when it equals the block count). */
  get arrivedBlocks(): number {
    return this.arrived.count;
  }

  /** The VM's reads and writes at the target ask the source through here. */
  blockSource() {
    return {
      fetch: (blocks: number[]) => this.o.channel.send({ type: MsgType.FETCH, prefetch: false, blocks }, Priority.DEMAND),
      cancel: (blocks: number[]) => this.o.channel.send({ type: MsgType.CANCEL, blocks }, Priority.CONTROL),
    };
  }

  abort(reason: string): void {
    const err = new FlimcdError(`migration aborted: ${reason}`, ErrorCode.ABORTED);
    this.o.disk.fail(err);
    if (this.phase === 'precopy') this.o.gate.shut(`migration aborted before cut-over: ${reason}`);
    this.setPhase('failed');
    this.failed?.(err);
  }

  handle(m: Message): void | Promise<void> {
    if (this.superseded) return;
    // Blocks that follow CUTOVER (the source pushes at once) wait until the VM is served here: applied
    // before start(missing) they would be marked missing again, and the cut-over's own wait for what
    // came before it would wait for them too. Each is acked once applied.
    // Answers to fetches are the exception: before the VM is served here the only fetches are of
    // references this side could not resolve in pre-copy, and the cut-over waits for those answers.
    // They are applied now; one for a block the CUTOVER lists missing is asked again once serving.
    if (this.phase === 'cutover' && this.cutoverRunning && CARRIES_BLOCKS.has(m.type)) {
      // A block fetched again may come as a push the source already had queued (it promotes that frame
      // instead of sending a second copy): the cut-over waits for it, so it is an answer too.
      const answer = demandAnswerBlocks(m) ?? this.refetchAnswer(m);
      if (!answer) return new Promise((resolve, reject) => this.heldInCutover.push({ m, resolve, reject }));
      for (let b = answer[0]; b < answer[0] + answer[1] && b < this.n; b++) this.answeredInCutover.push(b);
    }
    return this.apply(m);
  }

  /** A block message for a block fetched again (any reason): [block, 1]. */
  private refetchAnswer(m: Message): [first: number, count: number] | undefined {
    if (this.refetching.size === 0) return undefined;
    if ((m.type === MsgType.DATA || m.type === MsgType.REF) && this.refetching.has(m.block)) return [m.block, 1];
    if (m.type === MsgType.ZERO) for (let b = m.first; b < m.first + m.count; b++) if (this.refetching.has(b)) return [m.first, m.count];
    return undefined;
  }

  /** The cut-over is over: the messages held during it are applied, in the order they arrived. */
  private releaseHeld(err?: Error): void {
    for (const h of this.heldInCutover.splice(0)) {
      if (err) h.reject(err);
      else if (this.superseded) h.resolve();
      else {
        try {
          h.resolve(this.apply(h.m));
        } catch (e) {
          h.reject(e as Error);
        }
      }
    }
  }

  private apply(m: Message): void | Promise<void> {
    switch (m.type) {
      case MsgType.DATA: {
        this.count(m.reason, m.data.length);
        if (m.block >= this.n) throw new ProtocolError(`DATA for block ${m.block} beyond the image (${this.n} blocks)`);
        if (m.compressed) this.dedupStats.compressedBlocks++;
        const b = m.block;
        this.arrived.set(b);
        const hash = this.o.features?.dedup === true && this.o.local !== undefined;
        // Decompression and the id run on the runtime's block work (worker threads for agents), started
        // at once so blocks decode in parallel; each is applied in its block's order.
        const decoded = this.decodeData(m.data, m.compressed === true, b, hash);
        decoded.catch(() => {}); // awaited below, in the block's turn
        this.prefetcher?.arrived(b, m.reason === DataReason.PREFETCH, m.reason === DataReason.PUSH);
        const p = this.track(b, async () => {
          const { block, id } = await decoded;
          this.siblingDeferred.delete(b);
          if (await this.o.disk.applyData(b, block)) this.o.local?.noteWritten(b, id);
        });
        // Whatever the reason: a promoted push answers a fetch too.
        this.refetching.get(b)?.();
        return p;
      }
      case MsgType.ZERO:
        this.count(m.reason, 0, m.count);
        if (m.first + m.count > this.n) throw new ProtocolError(`ZERO range ${m.first}+${m.count} beyond the image`);
        for (let b = m.first; b < m.first + m.count; b++) this.arrived.set(b);
        if (this.prefetcher) for (let b = m.first; b < m.first + m.count; b++) this.prefetcher.arrived(b, m.reason === DataReason.PREFETCH);
        {
          const p = this.trackRange(m.first, m.count, async () => {
            if (this.siblingDeferred.size) for (const b of [...this.siblingDeferred.keys()]) if (b >= m.first && b < m.first + m.count) this.siblingDeferred.delete(b);
            await this.o.disk.applyZero(m.first, m.count);
            this.o.local?.noteZeroed(m.first, m.count);
          });
          // A block fetched again may have become zero at the source since it was referenced.
          for (let b = m.first; b < m.first + m.count; b++) this.refetching.get(b)?.();
          return p;
        }
      case MsgType.REF:
        if (m.block >= this.n) throw new ProtocolError(`REF for block ${m.block} beyond the image (${this.n} blocks)`);
        this.dedupStats.refBlocks++;
        this.arrived.set(m.block);
        this.count(m.reason, 0);
        this.prefetcher?.arrived(m.block, m.reason === DataReason.PREFETCH, m.reason === DataReason.PUSH);
        return this.handleRef(m.block, m.id);
      case MsgType.OFFER:
        return this.handleOffer(m.batch, m.blocks, m.ids);
      case MsgType.MISSING: {
        if (m.last) throw new ProtocolError('MISSING: a last span from the source');
        if (!m.span) return;
        if (m.span.first + m.span.count > this.n) throw new ProtocolError(`MISSING span ${m.span.first}+${m.span.count} beyond the image (${this.n} blocks)`);
        (this.cutoverMissing ??= new Bitmap(this.n)).setSpan(m.span.first, m.span.count, m.span.bits);
        return;
      }
      case MsgType.CUTOVER: {
        const missing = this.cutoverMissing ?? new Bitmap(this.n);
        this.cutoverMissing = undefined;
        if (missing.count !== m.cutover.missing) throw new ProtocolError(`CUTOVER counts ${m.cutover.missing} missing blocks, its MISSING spans set ${missing.count}`);
        const running = this.cutover(missing, m.cutover.heat, m.cutover.vmPaused === true);
        running.then(() => this.releaseHeld(), (e) => this.releaseHeld(e as Error));
        return (this.cutoverRunning = running);
      }
      case MsgType.DONE:
        this.setPhase('done');
        this.done?.({ verified: m.done.verified, root: m.done.root, stats: this.status() });
        return;
      case MsgType.ABORT:
        this.abort(`source aborted: ${m.reason}`);
        return;
      case MsgType.ERROR:
        this.abort(`source error ${m.code}: ${m.message}`);
        return;
      default:
        return;
    }
  }

  private count(reason: number, bytes: number, blocks = 1): void {
    const k = REASONS[reason] ?? String(reason);
    this.received[k] = (this.received[k] ?? 0) + blocks;
    this.receivedBytes += bytes;
  }

  /** A DATA payload as the block it carries (and its id when `hash`); a payload that does not decode is a protocol error. */
  private async decodeData(payload: Buffer, compressed: boolean, b: number, hash: boolean): Promise<{ block: Buffer; id: Buffer | undefined }> {
    const length = this.blockLength(b);
    try {
      if (compressed) return await this.o.work.decode(payload, length, hash);
      const block = this.blockDecoder.decodeBlock(payload, false, length);
      // The work may take the buffer over: what it gives back is the block from here on.
      return hash ? await this.o.work.encode({ block, hash: true, level: 0 }) : { block, id: undefined };
    } catch (e) {
      throw new ProtocolError(`DATA for block ${b}: ${(e as Error).message}`);
    }
  }

  private track<T>(block: number, fn: () => Promise<T>): Promise<T> {
    let prev: Promise<unknown> | undefined = this.chains.get(block);
    const covering = [...this.ranges].filter((r) => r.first <= block && block < r.end).map((r) => r.p);
    if (covering.length) prev = Promise.allSettled(prev ? [prev, ...covering] : covering);
    const p = prev ? prev.then(fn, fn) : fn();
    this.chains.set(block, p);
    this.outstanding.add(p);
    void p.finally(() => {
      this.outstanding.delete(p);
      if (this.chains.get(block) === p) this.chains.delete(block);
      this.appliedInPrecopy(this.blockLength(block));
    }).catch(() => {});
    return p;
  }

  private appliedInPrecopy(bytes: number): void {
    if (this.phase !== 'precopy') return;
    this.unflushedBytes += bytes;
    const every = this.o.backgroundFlushBytes ?? DEFAULT_BACKGROUND_FLUSH_BYTES;
    if (every <= 0 || this.unflushedBytes < every || this.backgroundFlush) return;
    this.unflushedBytes = 0;
    // A failure here is not lost: the cut-over's own flush reports the disk's state.
    const f = this.o.disk.flush().catch((e) => this.o.log.warn({ err: (e as Error).message }, 'background flush of the image failed'));
    this.backgroundFlush = f.finally(() => { this.backgroundFlush = undefined; });
  }

  /** As track() for a range of blocks; the work per call is bounded by what is in flight, not by the range. */
  private trackRange(first: number, count: number, fn: () => Promise<unknown>): Promise<void> {
    const end = first + count;
    const prevs: Promise<unknown>[] = [];
    if (count < this.chains.size) {
      for (let b = first; b < end; b++) {
        const p = this.chains.get(b);
        if (p) prevs.push(p);
      }
    } else {
      for (const [b, p] of this.chains) if (b >= first && b < end) prevs.push(p);
    }
    for (const r of this.ranges) if (r.first < end && first < r.end) prevs.push(r.p);
    const p = (prevs.length ? Promise.allSettled(prevs).then(fn) : fn()).then(() => undefined);
    const range = { first, end, p };
    this.ranges.add(range);
    this.outstanding.add(p);
    void p.finally(() => {
      this.outstanding.delete(p);
      this.ranges.delete(range);
    }).catch(() => {});
    return p;
  }

  private blockLength(b: number): number {
    const bs = this.o.disk.unit;
    return Math.min(bs, this.o.disk.size - b * bs);
  }

  /**
   * Produces content `id` for block `b` without the WAN, in message order:
   * from a block received earlier (read in that block's own order, so a later
   * overwrite cannot race it), else from the target's old image or the replica
   * index. Resolves to where it came from, or undefined if nothing local has it.
   */
  private materialise(b: number, id: Buffer, remote?: Promise<RemoteHit | undefined>, onInFlight?: () => void): Promise<Found | undefined> {
    const local = this.o.local;
    if (!local) return this.track(b, async () => undefined);
    const buf = this.o.allocBlock(this.blockLength(b));
    const c = local.receivedBlock(id);
    let fromReceived: Promise<boolean> | undefined;
    if (c !== undefined && c !== b && this.blockLength(c) === buf.length) {
      fromReceived = this.track(c, () => this.localWork.run(() => local.readReceived(c, id, buf)));
    }
    return this.track(b, async () => {
      let found: Found | undefined;
      if (fromReceived && (await fromReceived.catch(() => false))) found = 'received';
      else if (c === b && (await this.localWork.run(() => local.readReceived(b, id, buf)))) found = 'received';
      else found = await this.localWork.run(() => local.findLocal(b, id, buf));
      // Then a sibling host in this datacenter (looked up for the whole OFFER batch at once), re-hashed.
      const hit = found ? undefined : await remote;
      if (hit?.inFlight) onInFlight?.();
      if (hit) {
        const fetched = local.fetchRemote(b, id, hit, buf);
        const got = hit.inFlight && onInFlight ? await Promise.race([fetched, this.cutoverBegins]) : await fetched;
        if (got === 'cutover') {
          this.deferToPostcopy(b, id, buf, fetched);
          return 'lan';
        }
        if (got) found = 'lan';
      }
      if (!found) {
        // HAVE already said "have" for an in-flight copy that never came: ask the source, inside this
        // block's chain so the cut-over (which waits for every chain) also waits for the answer.
        if (hit?.inFlight && onInFlight) this.refetch(b);
        return undefined;
      }
      this.siblingDeferred.delete(b);
      // 'same': block b already holds it; during pre-copy nothing needs writing.
      if (found !== 'same' || this.o.disk.isActive) {
        if (!(await this.o.disk.applyData(b, buf))) return found;
      }
      local.noteWritten(b, id);
      return found;
    });
  }

  /**
   * The cut-over began while block `b` waited for a sibling's copy: the wait goes on outside the
   * block's chain, and whatever comes is applied once the VM is served here, as a post-copy arrival
   * (so the block is in the missing map the cut-over builds). The copy is applied unless the block
   * was written since (a later message, or the VM here); if none comes the source's copy is fetched,
   * and the deferral ends when that answer is applied.
   */
  private deferToPostcopy(b: number, id: Buffer, buf: Buffer, fetched: Promise<boolean>): void {
    const token = {};
    this.siblingDeferred.set(b, token);
    void fetched.then(async (ok) => {
      await this.cutoverRunning?.catch(() => {});
      if (this.siblingDeferred.get(b) !== token || this.superseded || !this.o.disk.isActive) return;
      if (!ok) {
        this.o.channel.send({ type: MsgType.FETCH, prefetch: false, blocks: [b] }, Priority.DEMAND);
        return;
      }
      await this.track(b, async () => {
        if (this.siblingDeferred.get(b) !== token) return;
        this.siblingDeferred.delete(b);
        if (await this.o.disk.applyData(b, buf)) this.o.local?.noteWritten(b, id);
      });
    }).catch((e: unknown) => this.o.log.warn({ block: b, err: (e as Error).message }, 'a sibling copy awaited past the cut-over could not be applied'));
  }

  private handleRef(b: number, id: Buffer): Promise<void> {
    return this.materialise(b, id).then((found) => {
      if (found) {
        if (found === 'received') this.dedupStats.refFromReceived++;
        else this.dedupStats.refFromLocal++;
        this.refetching.get(b)?.();
        return;
      }
      // Referenced content is not here after all (overwritten, or a file changed): ask the source.
      this.dedupStats.refFallback++;
      this.o.log.debug({ block: b }, 'reference could not be resolved locally; fetching the block');
      this.refetch(b);
    });
  }

  private refetch(b: number): void {
    if (!this.o.disk.isActive && !this.refetching.has(b)) {
      // Cut-over must wait for the answer: the source counts this block as delivered.
      let done!: () => void;
      const p = new Promise<void>((r) => (done = r));
      this.refetching.set(b, () => {
        this.refetching.delete(b);
        done();
      });
      this.outstanding.add(p);
      void p.then(() => this.outstanding.delete(p));
    }
    this.o.channel.send({ type: MsgType.FETCH, prefetch: false, blocks: [b] }, 1);
  }

  private async handleOffer(batch: number, blocks: Uint32Array, ids: Buffer): Promise<void> {
    for (const b of blocks) if (b >= this.n) throw new ProtocolError(`OFFER for block ${b} beyond the image (${this.n} blocks)`);
    this.dedupStats.offered += blocks.length;
    const idOf = (i: number) => ids.subarray(OFFER_ID_BYTES * i, OFFER_ID_BYTES * (i + 1));
    const remote = this.o.local?.lookupRemote(blocks, Array.from(blocks, (_, i) => idOf(i)));
    const results = Array.from(blocks, (b, i) => {
      // A sibling is fetching this content over the WAN (an in-flight claim): answer "have" now, so this
      // batch never waits on a sibling's batch (which may wait on ours), and take the copy when it lands;
      // if it never does, materialise asks the source for the block as for an unresolvable REF.
      let inFlight!: () => void;
      const early = new Promise<'sibling'>((r) => (inFlight = () => r('sibling')));
      const done = this.materialise(b, idOf(i), remote?.[i], inFlight).catch(() => undefined);
      return Promise.race([done, early]);
    });
    const have = new Uint8Array(Math.ceil(blocks.length / 8));
    const found = await Promise.all(results);
    found.forEach((f, i) => {
      if (f) {
        have[i >> 3]! |= 1 << (i & 7);
        this.arrived.set(blocks[i]!);
        this.dedupStats.offerHave++;
      }
    });
    this.o.channel.send({ type: MsgType.HAVE, batch, count: blocks.length, have }, 0);
  }

  /** Everything sent before CUTOVER is applied first; then the VM is served here. */
  private async cutover(missing: Bitmap, heat: Cutover['heat'], vmPaused: boolean): Promise<void> {
    const { disk, gate, channel, clock, log } = this.o;
    this.setPhase('cutover');
    // Timed for the downtime's breakdown (bench:perf reads the log line below).
    const arrivedAt = clock.now();
    this.cutoverBegan?.();
    while (this.outstanding.size) await Promise.allSettled([...this.outstanding]);
    // Still waiting for a sibling's copy: missing here until it lands. One the source lists missing was
    // written there since: its push carries the newer content, and the sibling's copy is not applied.
    for (const b of [...this.siblingDeferred.keys()]) {
      if (missing.get(b)) this.siblingDeferred.delete(b);
      else missing.set(b);
    }
    const appliedAt = clock.now();
    await this.backgroundFlush;
    if (this.o.onCutover) await this.o.onCutover(missing, () => disk.flush());
    else await disk.flush();
    const durableAt = clock.now();
    if (this.o.features?.prefetch && missing.count > 0) {
      const h = heatFromHandoff(heat, clock.now());
      this.prefetcher = new Prefetcher({
        disk, clock, heat: h.heat, co: h.co, areaBlocks: h.areaBlocks ?? Math.max(1, Math.round((1 << 20) / disk.unit)), config: this.o.prefetch,
        follows: h.follows,
        send: (blocks) => channel.send({ type: MsgType.FETCH, prefetch: true, blocks }, Priority.PREFETCH),
      });
    }
    disk.start(missing);
    // A fetch answered during the cut-over for a block the source lists missing (written after it was
    // referenced): the source counted the answer as the block's delivery and will not push it.
    const again = this.answeredInCutover.filter((b) => missing.get(b));
    this.answeredInCutover = [];
    if (again.length) this.blockSource().fetch(again);
    gate.open();
    this.servingAt = clock.now();
    if (vmPaused) this.verifyNotBefore = this.servingAt + VERIFY_AFTER_SWITCHOVER_MS;
    this.setPhase('postcopy');
    log.info({ missingBlocks: missing.count, applyMs: appliedAt - arrivedAt, durableMs: durableAt - appliedAt, serveMs: this.servingAt - durableAt }, 'cut-over: serving the VM at the target');
    channel.send({ type: MsgType.CUTOVER_DONE, servingAt: this.servingAt });
    void disk.whenComplete().then(() => this.finish()).catch((e) => this.failed?.(e as Error));
  }

  /** All blocks present: hash the image as it is on disk and send the root for comparison. */
  private async finish(): Promise<void> {
    if (this.superseded) return;
    const { disk, channel, clock, log } = this.o;
    const started = clock.now();
    this.prefetcher?.finish();
    this.setPhase('verify');
    const wait = (this.verifyNotBefore ?? 0) - clock.now();
    if (wait > 0) await sleep(clock, wait);
    // Aborted or handed to a successor meanwhile: nothing to verify here.
    if (this.superseded || this.phase === 'failed') return;
    await disk.flush();
    // Holes are walked from the image's extents, not read. A VM write racing the walk is harmless:
    // the id the walk takes for a block is the one reported for it. The ids of blocks the VM wrote
    // here go out in bounded WRITTEN batches, in block order, ahead of VERIFY.
    let targetWrites = 0;
    let blocks: number[] = [];
    let ids: Buffer[] = [];
    const sendWritten = () => {
      if (!blocks.length || this.superseded) return;
      channel.send({ type: MsgType.WRITTEN, blocks: Uint32Array.from(blocks), ids: Buffer.concat(ids) });
      blocks = [];
      ids = [];
    };
    const reader = { size: disk.size, capabilities: disk.capabilities, extents: disk.extents.bind(disk), read: disk.readLocal.bind(disk) };
    const root = (await imageRoot({
      image: reader, blockSize: disk.unit, content: this.o.content,
      report: {
        blocks: disk.writtenHere,
        onId: (b, id) => {
          blocks.push(b);
          ids.push(id);
          targetWrites++;
          if (blocks.length >= MAX_WRITTEN_BLOCKS) sendWritten();
        },
      },
    })).toString('hex');
    sendWritten();
    const hashMs = clock.now() - started;
    if (this.superseded) return;
    log.info({ root, targetWrites, hashMs: Math.round(hashMs) }, 'all blocks present; sent root for verification');
    const stats: TargetStats = {
      ...this.status(), missMean: disk.missLatency.mean, servingAt: this.servingAt,
      cpuS: this.o.cpuSeconds() - this.cpuAtStart, workersBusyS: this.o.work.busySeconds() - this.busyAtStart,
    };
    channel.send({ type: MsgType.VERIFY, verify: { root, targetWrites, hashMs, stats } });
  }

  private setPhase(p: Phase): void {
    this.phase = p;
    this.o.onPhase?.(p);
  }
}

