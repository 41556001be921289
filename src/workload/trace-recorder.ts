/**
 * `--record-trace FILE`: the VM's requests, written as FIU IODedup lines
 * (fiu-trace.ts parses them back, `flimcd simulate --workload trace:FILE`
 * replays them):
 *
 *   ts_ns pid process lba sectors R|W major minor digest digest...
 *
 * - ts_ns: when the request arrived, ns on the recorder's clock (monotonic;
 *   the replay only uses differences). pid 0, process `vm`, major/minor 0 0.
 * - lba/sectors: the byte range widened to 512-byte sectors.
 * - one digest per 4 KiB of the request (the last one may be shorter): the
 *   content read or written. Digests are XXH3-128 (32 hex digits, as wide as
 *   FIU's MD5): the replay treats them as opaque ids, and XXH3 costs ~1.5 µs
 *   per page here against MD5's ~8 µs, which matters on the VM's I/O path.
 * - write-zeroes and trim are recorded as writes of zero pages (they read as
 *   zero afterwards), in lines of at most 1 MiB and at most ZERO_LINES_MAX
 *   lines per request; the rest of a larger one is counted as `truncated`.
 *
 * Bounded memory, flushed continuously, never holding the VM: lines gather
 * in a batch that goes to the file stream at 64 KiB or every second. When
 * the file falls behind (the stream's buffered bytes plus the batch reach
 * `maxPendingBytes`), a request is dropped, not waited for: the VM's I/O
 * rate matters more than a complete trace. Drops are counted (stats, the
 * `onDrop` warning at most once per 10 s, and a `# dropped` comment line at
 * the end), so a replay knows the trace has gaps.
 *
 * A name ending in `.zst` is zstd-compressed (zstd-napi streaming), `.gz`
 * gzip (node:zlib); readTraceText reads all three back.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import type { Transform, Writable } from 'node:stream';
import { createGzip, gunzipSync } from 'node:zlib';
import { CompressStream, decompress as zstdDecompress } from 'zstd-napi';
import { createXXHash128 } from 'hash-wasm';
import { UsageError } from '../errors.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { RequestRecorder } from '../block/filters/recording.ts';
import { PAGE_SIZE } from './content.ts';

/** Longest line of zero pages (write-zeroes, trim), and how many such lines one request may take. */
const ZERO_LINE_BYTES = 1 << 20;
const ZERO_LINES_MAX = 64;
/** A batch goes to the stream at this size, or at FLUSH_MS. */
const BATCH_BYTES = 64 << 10;
const FLUSH_MS = 1000;
const DROP_WARN_MS = 10_000;

export interface TraceRecorderOptions {
  clock: Clock;
  /** Most trace bytes waiting for the file (stream buffer plus batch); beyond it requests are dropped. Default 16 MiB. */
  maxPendingBytes?: number;
  /** Told the running drop count, at most once per 10 s. */
  onDrop?: (dropped: number) => void;
}

export interface TraceRecorderStats {
  /** Requests written. */
  recorded: number;
  /** Requests dropped because the file fell behind. */
  dropped: number;
  /** Zero requests cut at ZERO_LINES_MAX lines. */
  truncated: number;
}

type Hasher = Awaited<ReturnType<typeof createXXHash128>>;

export type TraceCompression = 'none' | 'gzip' | 'zstd';

export function traceCompression(path: string): TraceCompression {
  return path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : 'none';
}

export class TraceRecorder implements RequestRecorder {
  private batch: string[] = [];
  private batchBytes = 0;
  private readonly maxPending: number;
  private readonly zeroDigests = new Map<number, string>();
  private timer: TimerHandle | undefined;
  private failed: Error | undefined;
  private closed = false;
  private lastWarnMs = -Infinity;
  private readonly counts: TraceRecorderStats = { recorded: 0, dropped: 0, truncated: 0 };

  private constructor(
    private readonly head: Writable,
    private readonly done: Promise<void>,
    private readonly hasher: Hasher,
    private readonly o: TraceRecorderOptions,
  ) {
    this.maxPending = o.maxPendingBytes ?? 16 << 20;
    this.arm();
  }

  /** Opens (truncates) `path`; compressed by its name (.zst, .gz). */
  static async open(path: string, o: TraceRecorderOptions): Promise<TraceRecorder> {
    const file = createWriteStream(path);
    try {
      await once(file, 'open');
    } catch (e) {
      throw new UsageError(`--record-trace: cannot write ${path}: ${(e as Error).message}`);
    }
    const kind = traceCompression(path);
    const compressor: Transform | undefined = kind === 'zstd' ? new CompressStream() : kind === 'gzip' ? createGzip() : undefined;
    const head: Writable = compressor ?? file;
    const done = compressor ? pipeline(compressor, file) : once(file, 'finish').then(() => undefined);
    const r = new TraceRecorder(head, done, await createXXHash128(), o);
    // A failing file (disk full) stops the recording, never the VM: later requests count as dropped.
    done.catch((e: Error) => (r.failed = e));
    head.on('error', (e: Error) => (r.failed = e));
    return r;
  }

  stats(): TraceRecorderStats {
    return { ...this.counts };
  }

  /** Why recording stopped early, if it did. */
  get error(): Error | undefined {
    return this.failed;
  }

  read(atMs: number, offset: number, data: Uint8Array): void {
    this.add(atMs, offset, data.length, 'R', (i, n) => this.digest(data.subarray(i, i + n)));
  }

  write(atMs: number, offset: number, data: Uint8Array): void {
    this.add(atMs, offset, data.length, 'W', (i, n) => this.digest(data.subarray(i, i + n)));
  }

  zero(atMs: number, offset: number, length: number): void {
    let lines = 0;
    for (let at = 0; at < length; at += ZERO_LINE_BYTES) {
      if (lines++ === ZERO_LINES_MAX) {
        this.counts.truncated++;
        return;
      }
      this.add(atMs, offset + at, Math.min(ZERO_LINE_BYTES, length - at), 'W', (_i, n) => this.zeroDigest(n));
    }
  }

  /** Writes what is batched, ends the file and waits for it (with a `# dropped` line if any were). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    const c = this.counts;
    if (c.dropped || c.truncated) this.push(`# flimcd: dropped ${c.dropped} requests (file behind), truncated ${c.truncated} zero requests\n`);
    this.flushBatch();
    this.head.end();
    await this.done.catch(() => {});
    if (this.failed) throw new UsageError(`--record-trace: writing the trace failed: ${this.failed.message}`);
  }

  private add(atMs: number, offset: number, length: number, op: 'R' | 'W', digestOf: (i: number, n: number) => string): void {
    if (this.closed || length === 0) return;
    if (this.failed || this.head.writableLength + this.batchBytes >= this.maxPending) {
      this.dropped(atMs);
      return;
    }
    const lba = Math.floor(offset / 512);
    const sectors = Math.ceil((offset + length) / 512) - lba;
    const pages = Math.ceil(sectors / 8);
    // fiu-trace.ts expects ceil(sectors / 8) digests: one per 4 KiB of the sector-widened range.
    const digests = new Array<string>(pages);
    for (let p = 0; p < pages; p++) {
      const i = Math.min(p * PAGE_SIZE, length - 1);
      digests[p] = digestOf(i, Math.min(PAGE_SIZE, length - i));
    }
    const ns = BigInt(Math.round(atMs * 1e6));
    this.push(`${ns} 0 vm ${lba} ${sectors} ${op} 0 0 ${digests.join(' ')}\n`);
    this.counts.recorded++;
  }

  private push(line: string): void {
    this.batch.push(line);
    this.batchBytes += line.length;
    if (this.batchBytes >= BATCH_BYTES) this.flushBatch();
  }

  private flushBatch(): void {
    if (this.batch.length === 0 || this.failed) return;
    this.head.write(this.batch.join(''));
    this.batch = [];
    this.batchBytes = 0;
  }

  private arm(): void {
    this.timer = this.o.clock.setTimer(FLUSH_MS, () => {
      this.flushBatch();
      if (!this.closed) this.arm();
    });
  }

  private dropped(atMs: number): void {
    this.counts.dropped++;
    if (atMs - this.lastWarnMs >= DROP_WARN_MS) {
      this.lastWarnMs = atMs;
      this.o.onDrop?.(this.counts.dropped);
    }
  }

  private digest(bytes: Uint8Array): string {
    this.hasher.init();
    this.hasher.update(bytes);
    return this.hasher.digest('hex');
  }

  private zeroDigest(n: number): string {
    let d = this.zeroDigests.get(n);
    if (d === undefined) {
      d = this.digest(new Uint8Array(n));
      if (this.zeroDigests.size < 16) this.zeroDigests.set(n, d);
    }
    return d;
  }
}

/** Most bytes of trace text readTraceText returns (the replay parses it all into memory). */
export const TRACE_TEXT_MAX = 1 << 30;

/** A trace file's text, decompressed by its name (.zst, .gz); at most `maxBytes` (default TRACE_TEXT_MAX). */
export function readTraceText(path: string, maxBytes = TRACE_TEXT_MAX): string {
  const raw = readFileSync(path);
  const kind = traceCompression(path);
  let text: Buffer;
  try {
    text = kind === 'gzip' ? gunzipSync(raw, { maxOutputLength: maxBytes }) : kind === 'zstd' ? zstdDecompress(raw) : raw;
  } catch (e) {
    throw new UsageError(`trace ${path}: cannot decompress (${kind}): ${(e as Error).message}`);
  }
  if (text.length > maxBytes) throw new UsageError(`trace ${path} is larger than ${maxBytes} bytes uncompressed`);
  return text.toString('utf8');
}
