import type { Logger } from 'pino';
import type { Disk } from '../block/disk.ts';
import { ExtentFlags, type Extent } from '../block/disk.ts';
import type { GateDisk } from '../block/filters/gate.ts';
import type { TrackingDisk } from '../block/filters/tracking.ts';
import { Bitmap } from '../util/bitmap.ts';
import type { TimerHandle } from '../util/clock.ts';
import { CpuSlice } from '../util/cpu-slice.ts';
import { Channel, Priority } from '../wire/channel.ts';
import { DataReason, MsgType, type DataReasonValue, type Message, type Verify } from '../wire/messages.ts';
import { carriesBlock, taggedBlocks } from '../wire/block-tag.ts';
import { bitmapSpans } from '../wire/bitmap-span.ts';
import { imageRoot, TargetWriteIds } from './image-root.ts';
import type { Runtime } from '../runtime.ts';
import { ContentSender } from './content-sender.ts';
import { ReadAhead, readAheadDepth } from './read-ahead.ts';
import type { Encoded } from '../workers/block-work.ts';
import { decideCutover, DEFAULT_CUTOVER_CONFIG, type CutoverConfig } from '../policy/cutover.ts';
import { featureList, hasPostcopy, resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import { heatForHandoff, orderedBlocks } from './heat-handoff.ts';
import { ErrorCode, FlimcdError, IoError, ProtocolError } from '../errors.ts';
import type { MigrationReport, Phase, SourceStatus } from './report.ts';
import { buildReport } from './report.ts';
import { formatBytes } from '../util/units.ts';

/** The engine takes time, content ids, compression and block buffers from the runtime it runs on. */
export interface SourceEngineOptions extends Pick<Runtime, 'clock' | 'content' | 'codec' | 'allocBlock' | 'work' | 'cpuSeconds'> {
  /** The source image, read for sending (below the VM's tracking filter). */
  image: Disk;
  /** The VM's I/O path: tells which blocks writes change. */
  tracking: TrackingDisk;
  /** Stops the VM's I/O at cut-over. */
  gate: GateDisk;
  channel: Channel;
  algorithm: Algorithm;
  /** Optimizations on (default: the algorithm's). */
  features?: Features;
  blockSize: number;
  /** Configured link bandwidth (bits/s) for the policy until a rate is measured. */
  bandwidthBps?: number;
  cutover?: Partial<CutoverConfig>;
  /** Wait for an operator's cut-over instead of the automatic policy. */
  manualCutover?: boolean;
  log: Logger;
  onPhase?: (phase: Phase) => void;
  /** The target has local content (old image, replica index) worth offering ids for. */
  targetHasReplicas?: boolean;
  /**
   * After the VM's I/O is held, before CUTOVER goes out: the agent records
   * durably that a cut-over has begun (a restarted source must not let the VM
   * write here until it knows whether the target took over).
   */
  beforeCutover?: () => Promise<void>;
  /**
   * The session continues on a new channel after a side restarted (its
   * in-flight messages are lost). 'precopy': what the target lacks is
   * re-derived by offering every block's content id (the target compares with
   * what its image holds). 'postcopy': the target's durable missing map says
   * exactly what to push (it arrives in MISSING spans); the VM already runs there.
   */
  resume?: { mode: 'precopy' } | { mode: 'postcopy' };
  /**
   * Blocks the target already holds through its backing file (same base root,
   * checked at the handshake): not read, hashed or sent unless the VM writes them.
   */
  fromBacking?: Bitmap;
}

/** A block read and handed to the block work, waiting for its turn to be sent. */
interface PreparedBlock {
  b: number;
  /** Handed over to `prepared` (which gives the bytes back), unless prepared is undefined (a zero block). */
  data: Buffer;
  prepared: Promise<Encoded> | undefined;
}

/** Post-copy push sent before the target serves: about a round trip of the link, within these bounds. */
const MIN_PUSH_BEFORE_SERVING = 256 << 10;
const MAX_PUSH_BEFORE_SERVING = 8 << 20;
/** drainBeforeHold waits at most this many transmit-to-ack times (plus 100 ms) for the link to empty. */
const DRAIN_RTTS = 4;

/** What an agent passes straight through to its engine: the algorithm and how it runs. */
export type SourceMigrationOptions = Pick<SourceEngineOptions, 'algorithm' | 'features' | 'blockSize' | 'bandwidthBps' | 'cutover' | 'manualCutover' | 'log' | 'onPhase'>;

/**
 * The source side of a migration: bulk pass and dirty rounds (pre-copy), the
 * cut-over hand-off, then on-demand service and background push (post-copy),
 * and the final Merkle comparison. Time and the link come in from outside
 * (clock, channel), so the simulator runs this same code.
 */
export class SourceEngine {
  private readonly n: number;
  /** Blocks whose current content the target does not have and that are not on their way. */
  private readonly needSend: Bitmap;
  /** Blocks sent at least once (a second send counts as "resent after dirtying"). */
  private readonly sentOnce: Bitmap;
  /** While holes are sent from an extents answer: blocks the VM wrote since that answer was read. */
  private dirtiedDuringScan: Bitmap | undefined;
  /** Post-copy: blocks the target still misses that the push has not covered. */
  private pushPending: Bitmap | undefined;
  private phase: Phase = 'starting';
  /** Set when the phase first becomes 'postcopy': the report's post-copy time is 0 without one. */
  private enteredPostcopy = false;
  private cutoverRequested = false;
  private wakeIdle: (() => void) | undefined;
  /** The cut-over's requester has paused the VM already: no drain before the hold (CutoverRequest). */
  private vmPaused = false;
  private aborted: Error | undefined;
  private readonly t0: number;
  private frozenAt: number | undefined;
  private cutoverDoneAt: number | undefined;
  private round = 0;
  private dirtiedInRound = 0;
  private roundStartedAt = 0;
  private readonly history: number[] = [];
  private cutoverReason = '';
  /** What the engine counts; the blocks by the form they crossed the link in are in the channel's ledger. */
  private readonly counts = {
    resentBlocks: 0, demandBlocks: 0, prefetchBlocks: 0, pushBlocks: 0, stopCopyBlocks: 0, canceledBlocks: 0, promotedBlocks: 0, dirtyEvents: 0,
    replicaBlocks: 0, offeredBlocks: 0, fromBackingBlocks: 0,
  };
  private readonly sender: ContentSender;
  private readonly waits = new Map<number, Array<{ resolve: (m: Message) => void; reject: (e: Error) => void }>>();
  private readonly inbox = new Map<number, Message>();
  private readonly config: CutoverConfig;
  readonly features: Features;
  /** Process CPU seconds and block-work busy seconds when the session began (the report counts from here). */
  private readonly cpuAtStart: number;
  private readonly busyAtStart: number;
  /** Post-copy resume: the target's missing map as its MISSING spans arrive; settled by the last one. */
  private readonly resumeMissing: Bitmap | undefined;
  private resumeMissingDone: (() => void) | undefined;
  private readonly resumeMissingComplete: Promise<void> | undefined;
  /** Content ids of the blocks the VM wrote at the target (WRITTEN), for the final comparison. */
  private readonly targetWrites = new TargetWriteIds();
  private targetWritesArrived: (() => void) | undefined;
  private readonly abortListeners: Array<() => void> = [];

  constructor(private readonly o: SourceEngineOptions) {
    this.features = o.features ?? resolveFeatures(o.algorithm);
    this.n = Math.ceil(o.image.size / o.blockSize);
    this.needSend = new Bitmap(this.n, true);
    this.sentOnce = new Bitmap(this.n);
    if (o.fromBacking && o.resume?.mode !== 'postcopy') {
      for (const b of o.fromBacking.setBits()) if (b < this.n && this.needSend.clear(b)) this.counts.fromBackingBlocks++;
    }
    this.t0 = o.clock.now();
    this.cpuAtStart = o.cpuSeconds();
    this.busyAtStart = o.work.busySeconds();
    this.config = { ...DEFAULT_CUTOVER_CONFIG[o.algorithm], ...o.cutover };
    this.sender = new ContentSender({
      channel: o.channel,
      image: o.image,
      blockSize: o.blockSize,
      clock: o.clock,
      content: o.content,
      codec: o.codec,
      allocBlock: o.allocBlock,
      work: o.work,
      dedup: this.features.dedup,
      compress: this.features.compress,
      counts: this.counts,
      linkBytesPerSec: () => (o.channel.stats.deliveryRateBps ?? o.bandwidthBps ?? 100e6) / 8,
    });
    this.sender.offersEnabled = this.features.dedup && (o.targetHasReplicas ?? false);
    if (o.resume?.mode === 'postcopy') {
      this.resumeMissing = new Bitmap(this.n);
      this.resumeMissingComplete = new Promise((r) => (this.resumeMissingDone = r));
    }
    if (o.resume?.mode === 'precopy' && !this.features.dedup) throw new FlimcdError('a pre-copy resume re-derives what the target lacks by content id: it needs the dedup feature', ErrorCode.RESUME);
    o.tracking.onDirty((a, b) => {
      for (let i = a; i <= b; i++) {
        this.dirtiedDuringScan?.set(i);
        if (this.needSend.set(i)) this.dirtiedInRound++;
        this.sender.markDirty(i);
        this.counts.dirtyEvents++;
      }
    });
  }

  get blockCount(): number {
    return this.n;
  }

  /** Operator or hypervisor asks for cut-over now. */
  requestCutover(opts?: { vmPaused?: boolean }): void {
    this.cutoverRequested = true;
    if (opts?.vmPaused) this.vmPaused = true;
    // An idle pre-copy wakes at once: a hypervisor cuts over with its VM paused, every ms is downtime.
    this.wakeIdle?.();
    // A round waiting for offer answers (and the lacking blocks they name) stops waiting: those go back
    // to the missing set at the hold, instead of the hold waiting for the round.
    this.sender.interrupt();
  }

  /**
   * Stops the migration. `keepGate`: leave the VM's disk as it is (a cut-over
   * may have happened; or a successor engine decides). `quiet`: do not tell the
   * target (the session goes on with a successor engine).
   */
  abort(reason: string, opts: { keepGate?: boolean; quiet?: boolean; code?: ErrorCode } = {}): void {
    if (this.aborted) return;
    this.aborted = new FlimcdError(`migration aborted: ${reason}`, opts.code ?? ErrorCode.ABORTED);
    if (!opts.quiet) {
      try {
        this.o.channel.send({ type: MsgType.ABORT, reason });
      } catch { /* link already down */ }
    }
    this.sender.abort(this.aborted);
    // Queued bulk data matters no more. Taking it back also frees a loop waiting for room on a link
    // the target may have stopped reading: run() ends now, not when the link is given up.
    this.o.channel.purge(Priority.BULK, () => true);
    for (const f of this.abortListeners.splice(0)) f();
    this.wakeIdle?.();
    for (const list of this.waits.values()) for (const w of list) w.reject(this.aborted);
    this.waits.clear();
    // Whatever happened, the VM keeps its disk at the source.
    if (!opts.keepGate && this.phase !== 'postcopy' && this.phase !== 'verify' && this.phase !== 'done') this.o.gate.open();
  }

  status(): SourceStatus & { algorithm: string; features: string[] } {
    const ch = this.o.channel.stats;
    return {
      phase: this.phase,
      algorithm: this.o.algorithm,
      features: featureList(this.features),
      round: this.round,
      blocks: this.n,
      blockSize: this.o.blockSize,
      remainingBlocks: this.remainingBlocks(),
      elapsedMs: this.o.clock.now() - this.t0,
      wireBytes: this.o.channel.ledger.wireBytes,
      linkRateBps: ch.deliveryRateBps,
      rttMs: ch.minRttMs,
      counts: { ...this.counts, ...this.o.channel.ledger.blocks },
    };
  }

  /**
   * What still has to cross: before the hand-off the set left to send (it grows with dirtying),
   * from the hand-off on what the target still misses (the push set), and nothing once done.
   * needSend keeps the bits it handed to the push set, so it would overstate that count after.
   */
  private remainingBlocks(): number {
    if (this.phase === 'done') return 0;
    return this.pushPending ? this.pushPending.count : this.needSend.count;
  }

  /** Message handler: the agent's channel delivers everything from the target here. */
  handle(m: Message): void | Promise<void> {
    switch (m.type) {
      case MsgType.FETCH:
        return this.serveFetch(m.blocks, m.prefetch);
      case MsgType.CANCEL:
        for (const b of m.blocks) {
          if (b < this.n && this.pushPending?.clear(b)) this.counts.canceledBlocks++;
        }
        return;
      case MsgType.HAVE:
        this.sender.handleHave(m);
        return;
      case MsgType.MISSING:
        if (!this.resumeMissing || !this.resumeMissingDone) throw new ProtocolError('MISSING from the target outside a post-copy resume');
        if (m.span) {
          if (m.span.first + m.span.count > this.n) throw new ProtocolError(`MISSING span ${m.span.first}+${m.span.count} beyond the image (${this.n} blocks)`);
          this.resumeMissing.setSpan(m.span.first, m.span.count, m.span.bits);
        }
        if (m.last) this.resumeMissingDone();
        return;
      case MsgType.WRITTEN:
        for (const b of m.blocks) if (b >= this.n) throw new ProtocolError(`WRITTEN for block ${b} beyond the image (${this.n} blocks)`);
        this.targetWrites.append(m.blocks, m.ids);
        this.targetWritesArrived?.();
        return;
      case MsgType.ABORT:
        this.abort(`target aborted: ${m.reason}`);
        return;
      case MsgType.ERROR:
        this.abort(`target error ${m.code}: ${m.message}`);
        return;
      default:
        this.deliver(m);
    }
  }

  async run(): Promise<MigrationReport> {
    const { log } = this.o;
    const resume = this.o.resume;
    if (resume?.mode === 'postcopy') {
      // The VM already runs at the target; the gate here stays shut.
      this.frozenAt = this.cutoverDoneAt = this.t0;
      this.cutoverReason = 'resumed in post-copy';
      this.needSend.clearAll();
      await Promise.race([this.resumeMissingComplete, this.abortedPromise()]);
      this.checkAborted();
      this.pushPending = this.resumeMissing;
      log.info({ missingBlocks: this.pushPending?.count }, 'post-copy resumed: pushing what the target still lacks');
      this.setPhase('postcopy');
      await this.push();
    } else {
      await this.preAndCutover();
    }
    return this.finishRun();
  }

  private async preAndCutover(): Promise<void> {
    const { clock } = this.o;
    this.setPhase('precopy');
    this.roundStartedAt = clock.now();
    // Nothing is fetched on demand before the cut-over: the link may queue more (channel.ts).
    if (this.o.algorithm !== 'postcopy') this.o.channel.preferThroughput(true);
    await this.sendHoles();

    if (this.o.algorithm !== 'postcopy') {
      for (;;) {
        const stopped = await this.sendRound();
        this.checkAborted();
        if (stopped) break;
        // The round is only over when every offer is answered and what the target lacks is sent,
        // unless a cut-over is requested meanwhile (the sender is interrupted; the hold takes back the rest).
        await this.sender.drain();
        this.checkAborted();
        const decision = this.decide();
        if (decision) break;
        this.round++;
        // Waiting for an operator with nothing left to send: poll instead of spinning.
        if (this.o.manualCutover && this.needSend.count === 0) await this.idle(100);
      }
    } else {
      this.cutoverReason = 'post-copy cuts over at once';
    }

    const { handedOver } = await this.cutover();
    if (!hasPostcopy(this.o.algorithm)) return handedOver;
    // The push starts the moment CUTOVER is on the link, not a round trip later when CUTOVER_DONE is
    // back: its first blocks reach the target right behind the hand-off, while the VM's first reads
    // there would otherwise all miss and wait a round trip for their fetches. The target applies what
    // follows CUTOVER only once it serves (target-engine.ts).
    const pushing = this.push(handedOver);
    pushing.catch(() => {}); // awaited below; an abort can fail it before the hand-off settles
    await handedOver;
    this.setPhase('postcopy');
    await pushing;
  }

  private async finishRun(): Promise<MigrationReport> {
    const { channel, clock, log } = this.o;
    const verify = (await this.expect(MsgType.VERIFY)) as { type: typeof MsgType.VERIFY; verify: Verify };
    const verifyAt = clock.now();
    this.setPhase('verify');
    const { root, verified } = await this.verify(verify.verify);
    channel.send({ type: MsgType.DONE, done: { verified, root } });
    await channel.waitAllAcked();
    // A closed channel releases the wait too: only an ack from the target means it has the result.
    this.checkAborted();
    this.setPhase('done');
    log.info({ verified, root }, verified ? 'migration verified' : 'VERIFICATION FAILED: target image differs');
    const rtt = channel.stats.minRttMs ?? 0;
    const totalMs = Math.max(0, verifyAt - this.t0 - verify.verify.hashMs - rtt / 2);
    const downtimeMs = Math.max(0, (this.cutoverDoneAt ?? this.frozenAt ?? this.t0) - (this.frozenAt ?? this.t0) - rtt / 2);
    return buildReport({
      algorithm: this.o.algorithm,
      features: this.features,
      imageBytes: this.o.image.size,
      blockSize: this.o.blockSize,
      verified,
      root,
      totalMs,
      precopyMs: (this.frozenAt ?? this.t0) - this.t0,
      downtimeMs,
      enteredPostcopy: this.enteredPostcopy,
      channel: channel.stats,
      wire: channel.ledger.breakdown(),
      counts: { ...this.counts, ...channel.ledger.blocks },
      rounds: this.round + (this.o.algorithm === 'postcopy' ? 0 : 1),
      cutoverReason: this.cutoverReason,
      targetStats: verify.verify.stats,
      bandwidthBps: this.o.bandwidthBps,
      compressionLevel: this.sender.compressionLevel,
      cpu: { seconds: this.o.cpuSeconds() - this.cpuAtStart, workerThreads: this.o.work.threads, workersBusyS: this.o.work.busySeconds() - this.busyAtStart },
    });
  }

  /**
   * Holes at the source need no data: the target learns them as zero ranges.
   * The VM writes meanwhile: a block written after the extents were read is
   * no hole any more, so it stays to be sent as data (clearing its need-send
   * bit would lose the write; a write after the ZERO is queued marks it again).
   */
  private async sendHoles(): Promise<void> {
    const { image } = this.o;
    if (!image.capabilities.canExtents) return;
    let pos = 0;
    this.dirtiedDuringScan = new Bitmap(this.n);
    try {
      while (pos < image.size) {
        // Cleared only when something was set: at 2 TiB the bitmap is 4 MiB and there are 2048 answers.
        if (this.dirtiedDuringScan.count) this.dirtiedDuringScan.clearAll();
        const ext = await image.extents(pos, Math.min(image.size - pos, 1 << 30), 4096);
        if (ext.length === 0) break;
        pos = await this.sendHoleExtents(ext, this.dirtiedDuringScan);
      }
    } finally {
      this.dirtiedDuringScan = undefined;
    }
  }

  /** ZERO ranges for the zero extents of one extents() answer, leaving out blocks written since it was read. Returns where the answer ends. */
  private async sendHoleExtents(ext: Extent[], dirtied: Bitmap): Promise<number> {
    const { image, blockSize } = this.o;
    let pos = 0;
    for (const e of ext) {
      pos = e.offset + e.length;
      if ((e.flags & ExtentFlags.ZERO) === 0) continue;
      const first = Math.ceil(e.offset / blockSize);
      const endBlock = Math.floor((e.offset + e.length) / blockSize);
      const lastFull = e.offset + e.length >= image.size ? this.n : endBlock;
      // Runs of blocks that still need sending and were not written since the answer was read, taken
      // a range at a time (a terabyte hole is one run, not millions of steps).
      for (let b = first; b < lastFull; ) {
        if (dirtied.get(b) || !this.needSend.get(b)) {
          b++;
          continue;
        }
        const d = dirtied.nextSet(b, lastFull);
        const end = this.needSend.nextClear(b, d < 0 ? lastFull : d);
        this.needSend.clearRange(b, end - b);
        this.sentOnce.setRange(b, end - b);
        await this.sendZero(b, end - b);
        b = end;
      }
    }
    return pos;
  }

  /** Waits up to `ms`, or until a cut-over is requested. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.o.clock.setTimer(ms, () => this.wakeIdle?.());
      this.wakeIdle = () => {
        timer.cancel();
        this.wakeIdle = undefined;
        resolve();
      };
    });
  }

  private async sendZero(first: number, count: number): Promise<void> {
    await this.o.channel.waitBulkRoom();
    this.checkAborted();
    this.o.channel.send({ type: MsgType.ZERO, first, count, reason: DataReason.BULK }, Priority.BULK, { tag: { kind: 'zero', first, count } });
  }

  /**
   * One pass over the blocks that need sending, in order. Blocks dirtied ahead
   * of the cursor are sent in this pass; behind it, in the next. Returns true
   * when the pass stopped for a cut-over request.
   */
  private async sendRound(): Promise<boolean> {
    const { channel, image, blockSize } = this.o;
    const reason = this.round === 0 ? DataReason.BULK : DataReason.DIRTY;
    const ahead = this.readAhead(reason);
    const slice = new CpuSlice(this.o.clock);
    try {
      for (const b of orderedBlocks(this.needSend, this.o.tracking, 'precopy', this.features.hotOrder, this.o.clock.now())) {
        await slice.pass();
        await channel.waitBulkRoom();
        this.checkAborted();
        if (this.cutoverRequested) return true;
        if (!this.needSend.clear(b)) continue;
        // Cleared before the read: a write that completes during the read marks it again.
        const len = Math.min(blockSize, image.size - b * blockSize);
        const data = this.o.allocBlock(len);
        try {
          await image.read(b * blockSize, data);
        } catch (e) {
          this.needSend.set(b);
          // A dead storage daemon keeps its own code: the cause, not a symptom.
          if (e instanceof FlimcdError && e.code === ErrorCode.STORAGE_DAEMON) throw e;
          throw new IoError(`reading block ${b} of the source image failed: ${(e as Error).message}`, { cause: e });
        }
        await ahead.add(this.prepared(b, data, reason));
      }
      await ahead.drain();
      return false;
    } finally {
      // Read but not sent (a cut-over request, a failure): they still need sending.
      for (const a of ahead.takeUnsent()) this.needSend.set(a.b);
    }
  }

  /** Blocks read ahead of the one being sent, their ids and zstd under way on the runtime's block work. */
  private readAhead(reason: DataReasonValue): ReadAhead<PreparedBlock> {
    return new ReadAhead(readAheadDepth(this.o.work.threads), (a) => this.sendBlock(a.b, a.data, reason, Priority.BULK, a.prepared));
  }

  private prepared(b: number, data: Buffer, reason: DataReasonValue): PreparedBlock {
    const prepared = this.sender.prepare(data, reason);
    prepared?.catch(() => {}); // awaited when its turn to be sent comes
    return { b, data, prepared };
  }

  private sendBlock(b: number, data: Buffer, reason: DataReasonValue, prio: (typeof Priority)[keyof typeof Priority], prepared: Promise<Encoded> | undefined | 'unprepared' = 'unprepared'): Promise<void> {
    if (this.sentOnce.get(b) && (reason === DataReason.DIRTY || reason === DataReason.STOP_COPY || reason === DataReason.BULK)) this.counts.resentBlocks++;
    this.sentOnce.set(b);
    const fetched = reason === DataReason.DEMAND || reason === DataReason.PREFETCH;
    return this.sender.send(b, data, reason, prio, !fetched, prepared);
  }

  /** End of a round: ask the policy. Returns true to cut over. */
  private decide(): boolean {
    const now = this.o.clock.now();
    const secs = Math.max(0.001, (now - this.roundStartedAt) / 1000);
    const ch = this.o.channel.stats;
    const linkBytesPerSec = (ch.deliveryRateBps ?? this.o.bandwidthBps ?? 100e6) / 8;
    const remainingBytes = this.needSend.count * this.o.blockSize;
    const dirtyBytesPerSec = (this.dirtiedInRound * this.o.blockSize) / secs;
    if (this.cutoverRequested) {
      this.cutoverReason ||= 'requested by the operator';
      return true;
    }
    if (this.o.manualCutover) {
      this.history.push(remainingBytes);
      this.dirtiedInRound = 0;
      this.roundStartedAt = now;
      return false;
    }
    const d = decideCutover({
      algorithm: this.o.algorithm,
      roundsDone: this.round,
      remainingBytes,
      history: this.history,
      linkBytesPerSec,
      dirtyBytesPerSec,
      rttMs: ch.minAckRttMs ?? ch.minRttMs ?? 0,
      config: this.config,
    });
    this.o.log.info({ round: this.round, unqueuedBytes: remainingBytes, dirtyBytesPerSec: Math.round(dirtyBytesPerSec), linkBytesPerSec: Math.round(linkBytesPerSec), decision: d }, 'pre-copy round done');
    this.history.push(remainingBytes);
    this.dirtiedInRound = 0;
    this.roundStartedAt = now;
    if (d.cutover) this.cutoverReason = d.reason;
    return d.cutover;
  }

  /**
   * Stops the VM's I/O here and hands the target the list of blocks it lacks
   * (after stop-and-copy for precopy). Returns once CUTOVER is sent;
   * `handedOver` settles when the target serves and the VM has been turned
   * away from this side for good.
   */
  private async cutover(): Promise<{ handedOver: Promise<void> }> {
    const { channel, gate, clock, image, blockSize } = this.o;
    if (this.cutoverRequested && !this.cutoverReason) this.cutoverReason = 'requested by the operator';
    this.setPhase('cutover');
    if (this.vmPaused) {
      channel.preferThroughput(false);
      this.takeBackQueuedBulk();
      this.o.log.info({ inFlight: channel.stats.inFlight }, 'cut-over: the VM is paused by its hypervisor; holding at once, CUTOVER follows what is on the link');
    } else {
      await this.drainBeforeHold();
    }
    // The read heat the target's prefetch starts from, taken while the VM still runs here: sorting
    // the block heat (up to 64 Ki entries) is tens of ms that would otherwise be downtime, and a
    // few ms older heat predicts the same reads.
    const heatNow = this.features.prefetch ? heatForHandoff(this.o.tracking, clock.now()) : undefined;
    const holdAskedAt = clock.now();
    await gate.hold();
    this.frozenAt = clock.now();
    await this.o.beforeCutover?.();
    const persistedAt = clock.now();
    // Block messages not yet on the wire are taken back (the ledger counts them as purged, not sent):
    // their blocks are listed as missing instead. Offers not yet answered, and blocks answered
    // "lacking" but not yet sent, are missing too (an offer's blocks come back from abandonPending).
    for (const b of this.sender.abandonPending()) this.needSend.set(b);
    this.takeBackQueuedBulk();
    if (!hasPostcopy(this.o.algorithm)) {
      // Stop-and-copy: everything, then the hand-off.
      for (let b = this.needSend.nextSet(0); b >= 0; b = this.needSend.nextSet(b + 1)) {
        await channel.waitBulkRoom();
        this.checkAborted();
        this.needSend.clear(b);
        const len = Math.min(blockSize, image.size - b * blockSize);
        const data = this.o.allocBlock(len);
        await image.read(b * blockSize, data);
        await this.sendBlock(b, data, DataReason.STOP_COPY, Priority.BULK);
      }
      await channel.waitAllAcked();
      this.checkAborted();
    }
    this.pushPending = this.needSend.clone();
    const missing = this.pushPending.count;
    const missingBytes = missing * blockSize;
    this.o.log.info(
      // holdMs: the VM's requests in flight finishing; handoffMs: from held to CUTOVER queued (bench:perf's breakdown).
      // persistMs: the durable "cut-over begun" record (part of handoffMs).
      { missingBlocks: missing, missingBytes, reason: this.cutoverReason, holdMs: this.frozenAt - holdAskedAt, handoffMs: clock.now() - this.frozenAt, persistMs: persistedAt - this.frozenAt },
      missing ? `cut-over: VM I/O held at the source; ${missing} blocks (${formatBytes(missingBytes)}) still missing at the target travel in post-copy` : 'cut-over: VM I/O held at the source; the target holds every block',
    );
    const heat = this.pushPending.count ? heatNow : undefined;
    // The missing map in bounded spans (copies: the push clears bits of pushPending at once), then the hand-off.
    for (const span of bitmapSpans(this.pushPending)) channel.send({ type: MsgType.MISSING, last: false, span });
    channel.send({ type: MsgType.CUTOVER, cutover: { frozenAt: this.frozenAt, missing: this.pushPending.count, heat, ...(this.vmPaused ? { vmPaused: true } : {}) } });
    const done = this.expect(MsgType.CUTOVER_DONE).then(() => {
      this.cutoverDoneAt = clock.now();
      // The VM now lives at the target: requests still arriving here are turned away (ESHUTDOWN).
      gate.shut('this disk has moved to the migration target');
    });
    done.catch(() => {}); // the caller awaits it; an abort before then rejects it
    return { handedOver: done };
  }

  /**
   * Before the VM's I/O is held: the window shrinks to what latency-sensitive traffic tolerates,
   * queued bulk messages are taken back (their blocks stay to send), and the source waits, the VM
   * still running here, until the target has applied what is on the link. Otherwise CUTOVER would
   * queue behind up to a window of data (2 × the bandwidth-delay product in pre-copy) that the
   * target must receive and apply first, all of it inside the downtime. Bounded: a target slower
   * than DRAIN_RTTS round trips (plus 100 ms) is cut over anyway.
   */
  private async drainBeforeHold(): Promise<void> {
    const { channel, clock } = this.o;
    channel.preferThroughput(false);
    this.takeBackQueuedBulk();
    const rtt = channel.stats.minAckRttMs ?? channel.stats.minRttMs ?? 100;
    const drainStart = clock.now();
    let timer: TimerHandle | undefined;
    await Promise.race([
      channel.waitAllAcked(),
      new Promise<void>((resolve) => { timer = clock.setTimer(DRAIN_RTTS * rtt + 100, resolve); }),
      this.abortedPromise(),
    ]);
    timer?.cancel();
    this.checkAborted();
    const inFlight = channel.stats.inFlight;
    this.o.log.info({ drainMs: clock.now() - drainStart, inFlight }, inFlight ? 'cut-over: the link did not drain in time; holding anyway' : 'cut-over: link drained before the hold');
  }

  /** Bulk block messages not yet on the wire come back; their blocks are still to send. */
  private takeBackQueuedBulk(): void {
    for (const tag of this.o.channel.purge(Priority.BULK, () => true)) {
      const [first, count] = taggedBlocks(tag);
      for (let b = first; b < first + count; b++) this.needSend.set(b);
    }
  }

  /**
   * Post-copy background push of everything the target still misses: read-hot areas first with hot
   * order, else block order. Until `handedOver` settles (the target serves) only about a round trip
   * of the link goes out: enough for the VM's first reads there, while a full-rate push would keep
   * both sides' CPUs (and the target's buffer of what follows CUTOVER) busy inside the downtime.
   */
  private async push(handedOver?: Promise<void>): Promise<void> {
    const pending = this.pushPending!;
    const { image, blockSize, channel } = this.o;
    const ahead = this.readAhead(DataReason.PUSH);
    const st = channel.stats;
    const aheadBytes = Math.min(MAX_PUSH_BEFORE_SERVING, Math.max(MIN_PUSH_BEFORE_SERVING, ((st.deliveryRateBps ?? this.o.bandwidthBps ?? 100e6) / 8) * ((st.minRttMs ?? 100) / 1000)));
    let beforeServing = handedOver ? Math.ceil(aheadBytes / blockSize) : Infinity;
    const slice = new CpuSlice(this.o.clock);
    try {
      for (const b of orderedBlocks(pending, this.o.tracking, 'push', this.features.hotOrder, this.o.clock.now())) {
        await slice.pass();
        if (beforeServing-- <= 0 && handedOver) {
          await handedOver;
          handedOver = undefined;
        }
        await channel.waitBulkRoom();
        this.checkAborted();
        if (!pending.clear(b)) continue; // fetched or canceled meanwhile
        const len = Math.min(blockSize, image.size - b * blockSize);
        const data = this.o.allocBlock(len);
        await image.read(b * blockSize, data);
        await ahead.add(this.prepared(b, data, DataReason.PUSH));
      }
      await ahead.drain();
    } finally {
      for (const a of ahead.takeUnsent()) pending.set(a.b);
    }
  }

  private async serveFetch(blocks: number[], prefetch: boolean): Promise<void> {
    const { image, blockSize } = this.o;
    for (const b of blocks) {
      if (b >= this.n) continue;
      // A prefetch of a block already pushed (or canceled) would only send it twice; its push is on the way.
      if (prefetch && this.pushPending && !this.pushPending.get(b)) continue;
      // Post-copy (the image here is frozen): a block the VM waits for whose push or prefetch frame
      // has not left yet goes now, in the demand lane, instead of as a second copy behind it.
      if (!prefetch && this.pushPending && !this.pushPending.get(b) && this.o.channel.promote(Priority.DEMAND, (tag) => carriesBlock(tag, b)) > 0) {
        this.counts.promotedBlocks++;
        continue;
      }
      this.pushPending?.clear(b);
      const len = Math.min(blockSize, image.size - b * blockSize);
      const data = this.o.allocBlock(len);
      await image.read(b * blockSize, data);
      await this.sendBlock(b, data, prefetch ? DataReason.PREFETCH : DataReason.DEMAND, prefetch ? Priority.PREFETCH : Priority.DEMAND);
      // Pre-copy (a reference the target could not resolve): the VM still writes here, and a dirty
      // resend read after this read began may leave before this answer. One more send of the block,
      // behind this answer in the bulk lane (the next round, or the cut-over's stop-and-copy or
      // missing list, all of which start after the phase changes), makes the last word current.
      if (this.phase === 'precopy') this.needSend.set(b);
    }
  }

  /**
   * Source root over its (frozen) image, holes taken from its extents unread, with the blocks the
   * VM wrote at the target taken from the target's ids (the WRITTEN batches VERIFY counts).
   */
  private async verify(v: Verify): Promise<{ root: string; verified: boolean }> {
    while (this.targetWrites.count < v.targetWrites) {
      this.checkAborted();
      await Promise.race([new Promise<void>((r) => (this.targetWritesArrived = r)), this.abortedPromise()]);
    }
    this.checkAborted();
    if (this.targetWrites.count !== v.targetWrites) throw new ProtocolError(`VERIFY counts ${v.targetWrites} blocks written at the target, WRITTEN listed ${this.targetWrites.count}`);
    const root = (await imageRoot({ image: this.o.image, blockSize: this.o.blockSize, content: this.o.content, overrides: this.targetWrites })).toString('hex');
    return { root, verified: root === v.root };
  }

  /** Settles (never resolves) once the engine is aborted: a wait raced against it ends with the abort. */
  private abortedPromise(): Promise<void> {
    if (this.aborted) return Promise.resolve();
    return new Promise((resolve) => this.abortListeners.push(resolve));
  }

  private setPhase(p: Phase): void {
    this.phase = p;
    if (p === 'postcopy') this.enteredPostcopy = true;
    this.o.onPhase?.(p);
  }

  private checkAborted(): void {
    if (this.aborted) throw this.aborted;
  }

  private deliver(m: Message): void {
    const list = this.waits.get(m.type);
    if (list && list.length) list.shift()!.resolve(m);
    else this.inbox.set(m.type, m);
  }

  private expect(type: number): Promise<Message> {
    this.checkAborted();
    const m = this.inbox.get(type);
    if (m) {
      this.inbox.delete(type);
      return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const list = this.waits.get(type) ?? [];
      list.push({ resolve, reject });
      this.waits.set(type, list);
    });
  }
}

