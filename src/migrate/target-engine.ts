import type { Logger } from 'pino';
import type { GateDisk } from '../block/filters/gate.ts';
import type { PostcopyDisk } from '../block/filters/postcopy.ts';
import { Bitmap } from '../util/bitmap.ts';
import type { Clock } from '../util/clock.ts';
import { Channel, Priority } from '../wire/channel.ts';
import { DataReason, MsgType, type Cutover, type Message } from '../wire/messages.ts';
import type { Features } from '../policy/algorithm.ts';
import type { PrefetchConfig } from '../policy/prefetch.ts';
import { Prefetcher } from './prefetcher.ts';
import { heatFromHandoff } from './heat-handoff.ts';
import { blockId, merkleRoot } from './content-id.ts';
import { FlimcdError, ProtocolError } from '../errors.ts';
import type { Phase } from './report.ts';

export interface TargetEngineOptions {
  /** The target image wrapped for post-copy; the VM's export serves it (through `gate`). */
  disk: PostcopyDisk;
  /** Holds the VM's I/O at the target until cut-over. */
  gate: GateDisk;
  channel: Channel;
  clock: Clock;
  log: Logger;
  onPhase?: (phase: Phase) => void;
  /** Optimizations the source asked for that this side takes part in (prefetch). */
  features?: Partial<Features>;
  prefetch?: Partial<PrefetchConfig>;
}

export interface TargetResult {
  verified: boolean;
  root: string;
  stats: Record<string, unknown>;
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
  private readonly outstanding = new Set<Promise<unknown>>();
  private readonly received: Record<string, number> = {};
  private receivedBytes = 0;
  private servingAt: number | undefined;
  private done: ((r: TargetResult) => void) | undefined;
  private failed: ((e: Error) => void) | undefined;
  readonly result: Promise<TargetResult>;
  private readonly n: number;
  private prefetcher: Prefetcher | undefined;

  constructor(private readonly o: TargetEngineOptions) {
    this.n = o.disk.blockCount;
    this.result = new Promise((resolve, reject) => {
      this.done = resolve;
      this.failed = reject;
    });
    this.result.catch(() => {});
  }

  get currentPhase(): Phase {
    return this.phase;
  }

  status(): Record<string, unknown> {
    const d = this.o.disk;
    return {
      phase: this.phase,
      blocks: this.n,
      blockSize: d.unit,
      missingBlocks: d.isActive ? d.missing.count : undefined,
      receivedBlocks: { ...this.received },
      receivedBytes: this.receivedBytes,
      ...d.stats,
      missP50: d.missLatency.percentile(50),
      missP99: d.missLatency.percentile(99),
      ...this.prefetcher?.stats(),
    };
  }

  /** The VM's reads and writes at the target ask the source through here. */
  blockSource() {
    return {
      fetch: (blocks: number[]) => this.o.channel.send({ type: MsgType.FETCH, prefetch: false, blocks }, Priority.DEMAND),
      cancel: (blocks: number[]) => this.o.channel.send({ type: MsgType.CANCEL, blocks }, Priority.CONTROL),
    };
  }

  abort(reason: string): void {
    const err = new FlimcdError(`migration aborted: ${reason}`, 'FLIMCD_ERR_ABORTED');
    this.o.disk.fail(err);
    if (this.phase === 'precopy') this.o.gate.shut(`migration aborted before cut-over: ${reason}`);
    this.setPhase('failed');
    this.failed?.(err);
  }

  handle(m: Message): void | Promise<void> {
    switch (m.type) {
      case MsgType.DATA:
        this.count(m.reason, m.data.length);
        if (m.block >= this.n) throw new ProtocolError(`DATA for block ${m.block} beyond the image (${this.n} blocks)`);
        this.prefetcher?.arrived(m.block, m.reason === DataReason.PREFETCH);
        return this.track(m.block, () => this.o.disk.applyData(m.block, m.data));
      case MsgType.ZERO:
        this.count(m.reason, 0, m.count);
        if (m.first + m.count > this.n) throw new ProtocolError(`ZERO range ${m.first}+${m.count} beyond the image`);
        if (this.prefetcher) for (let b = m.first; b < m.first + m.count; b++) this.prefetcher.arrived(b, m.reason === DataReason.PREFETCH);
        return this.trackRange(m.first, m.count, () => this.o.disk.applyZero(m.first, m.count));
      case MsgType.CUTOVER:
        return this.cutover(Bitmap.from(this.n, m.missing), m.cutover.heat);
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

  private track(block: number, fn: () => Promise<unknown>): Promise<void> {
    const prev = this.chains.get(block);
    const p = (prev ? prev.then(fn, fn) : fn()).then(() => undefined);
    this.chains.set(block, p);
    this.outstanding.add(p);
    void p.finally(() => {
      this.outstanding.delete(p);
      if (this.chains.get(block) === p) this.chains.delete(block);
    }).catch(() => {});
    return p;
  }

  private trackRange(first: number, count: number, fn: () => Promise<unknown>): Promise<void> {
    const prevs: Promise<unknown>[] = [];
    for (let b = first; b < first + count; b++) {
      const p = this.chains.get(b);
      if (p) prevs.push(p);
    }
    const p = (prevs.length ? Promise.allSettled(prevs).then(fn) : fn()).then(() => undefined);
    for (let b = first; b < first + count; b++) this.chains.set(b, p);
    this.outstanding.add(p);
    void p.finally(() => {
      this.outstanding.delete(p);
      for (let b = first; b < first + count; b++) if (this.chains.get(b) === p) this.chains.delete(b);
    }).catch(() => {});
    return p;
  }

  /** Everything sent before CUTOVER is applied first; then the VM is served here. */
  private async cutover(missing: Bitmap, heat: Cutover['heat']): Promise<void> {
    const { disk, gate, channel, clock, log } = this.o;
    this.setPhase('cutover');
    while (this.outstanding.size) await Promise.allSettled([...this.outstanding]);
    await disk.flush();
    if (this.o.features?.prefetch && missing.count > 0) {
      const h = heatFromHandoff(heat, clock.now());
      this.prefetcher = new Prefetcher({
        disk, clock, heat: h.heat, co: h.co, areaBlocks: h.areaBlocks ?? Math.max(1, Math.round((1 << 20) / disk.unit)), config: this.o.prefetch,
        send: (blocks) => channel.send({ type: MsgType.FETCH, prefetch: true, blocks }, Priority.PREFETCH),
      });
    }
    disk.start(missing);
    gate.open();
    this.servingAt = clock.now();
    this.setPhase('postcopy');
    log.info({ missingBlocks: missing.count }, 'cut-over: serving the VM at the target');
    channel.send({ type: MsgType.CUTOVER_DONE, servingAt: this.servingAt });
    void disk.whenComplete().then(() => this.finish()).catch((e) => this.failed?.(e as Error));
  }

  /** All blocks present: hash the image as it is on disk and send the root for comparison. */
  private async finish(): Promise<void> {
    const { disk, channel, clock, log } = this.o;
    const started = clock.now();
    this.prefetcher?.finish();
    this.setPhase('verify');
    await disk.flush();
    const bs = disk.unit;
    const ids: Buffer[] = new Array(this.n);
    const buf = Buffer.allocUnsafe(bs);
    // A VM write racing this read is harmless: the id we read is the one we report for that block.
    for (let b = 0; b < this.n; b++) {
      const len = Math.min(bs, disk.size - b * bs);
      const view = len === bs ? buf : buf.subarray(0, len);
      await disk.readLocal(b * bs, view);
      ids[b] = blockId(view);
    }
    const written = disk.writtenHere;
    const targetWrites: Array<[number, string]> = [];
    for (let b = written.nextSet(0); b >= 0; b = written.nextSet(b + 1)) targetWrites.push([b, ids[b]!.toString('hex')]);
    const root = merkleRoot(ids).toString('hex');
    const hashMs = clock.now() - started;
    log.info({ root, targetWrites: targetWrites.length, hashMs: Math.round(hashMs) }, 'all blocks present; sent root for verification');
    const st = this.status();
    channel.send({
      type: MsgType.VERIFY,
      verify: { root, targetWrites, hashMs, stats: { ...st, missMean: disk.missLatency.mean, servingAt: this.servingAt } },
    });
  }

  private setPhase(p: Phase): void {
    this.phase = p;
    this.o.onPhase?.(p);
  }
}

