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
 *   content read or written. Digests are XXH3-128 (32 hex digits, canonical
 *   form, as wide as FIU's MD5): the replay treats them as opaque ids, and
 *   XXH3 is far cheaper than MD5 on the VM's I/O path (page-digest.ts).
 *   The file's first line, a comment, names the digest.
 * - write-zeroes and trim are recorded as writes of zero pages (they read as
 *   zero afterwards), in lines of at most 1 MiB and at most ZERO_LINES_MAX
 *   lines per request; the rest of a larger one is counted as `truncated`.
 *
 * Mostly off the VM's thread: with the native digest (page-digest.ts, ~27 µs
 * per MiB) the thread serving the VM digests each request's own bytes into a
 * staging buffer (16 bytes per page, 1024 requests), which costs less than
 * copying them would; without it, it copies the bytes there (1 MiB of data)
 * and the worker digests them with hash-wasm (~250 µs per MiB): the same
 * digests either way. Lines, compression and the file are a worker thread's
 * (trace-writer-worker.mjs), which gets full buffers (or the current one
 * every 200 ms) by transfer and hands them back once the file stream took
 * their text. Bounded memory,
 * flushed continuously, never holding the VM: there are `maxPendingBytes` /
 * 1 MiB buffers; when the file falls behind, none is free and the request is
 * dropped, not waited for: the VM's I/O rate matters more than a complete
 * trace. Drops are counted (stats, the `onDrop` warning at most once per
 * 10 s, and a `# dropped` comment line at the end), so a replay knows the
 * trace has gaps. A request larger than a buffer is recorded as 1 MiB lines.
 *
 * A name ending in `.zst` is zstd-compressed (zstd-napi streaming), `.gz`
 * gzip (node:zlib); readTraceText reads all three back.
 */
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { UsageError } from '../errors.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { RequestRecorder } from '../block/filters/recording.ts';
import { DIGEST_BYTES, fiuPages, nativePageDigests, type PageDigester } from './page-digest.ts';

/** A staging buffer's data bytes and requests. */
const STAGE_BYTES = 1 << 20;
const STAGE_ENTRIES = 1024;
/** The buffer being filled goes to the worker at least this often. */
const FLUSH_MS = 200;
const DROP_WARN_MS = 10_000;
const KIND = { read: 0, write: 1, zero: 2 } as const;

export interface TraceRecorderOptions {
  clock: Clock;
  /** Staging memory (1 MiB buffers, at least 2) for request bytes, or for their digests (16 bytes a page) with the native digest; when none is free requests are dropped. Default 16 MiB. */
  maxPendingBytes?: number;
  /** Told the running drop count, at most once per 10 s. */
  onDrop?: (dropped: number) => void;
  /** Digest on the worker with hash-wasm even when the native digest loaded (tests: both write the same trace). */
  digestOnWorker?: boolean;
}

export interface TraceRecorderStats {
  /** Lines written: requests, a request over 1 MiB as several (final once closed). */
  recorded: number;
  /** Requests dropped because the file fell behind. */
  dropped: number;
  /** Zero requests cut at 64 lines of 1 MiB (final once closed). */
  truncated: number;
}

export type TraceCompression = 'none' | 'gzip' | 'zstd';

export function traceCompression(path: string): TraceCompression {
  return path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : 'none';
}

interface Stage {
  data: ArrayBuffer;
  meta: ArrayBuffer;
  bytes: Uint8Array;
  entries: Float64Array;
  n: number;
  used: number;
}

type WorkerMessage =
  | { type: 'open' }
  | { type: 'free'; data: ArrayBuffer; meta: ArrayBuffer; recorded: number; truncated: number }
  | { type: 'closed'; truncated?: number; error?: string };

function stage(data = new ArrayBuffer(STAGE_BYTES), meta = new ArrayBuffer(STAGE_ENTRIES * 4 * 8)): Stage {
  return { data, meta, bytes: new Uint8Array(data), entries: new Float64Array(meta), n: 0, used: 0 };
}

export class TraceRecorder implements RequestRecorder {
  private readonly free: Stage[] = [];
  private current: Stage | undefined;
  private timer: TimerHandle | undefined;
  private failed: Error | undefined;
  private closing: Promise<void> | undefined;
  private onClosed: ((m: { truncated?: number; error?: string }) => void) | undefined;
  private lastWarnMs = -Infinity;
  private readonly counts: TraceRecorderStats = { recorded: 0, dropped: 0, truncated: 0 };

  private constructor(private readonly worker: Worker, private readonly o: TraceRecorderOptions, private readonly digester: PageDigester | undefined) {
    const n = Math.max(2, Math.ceil((o.maxPendingBytes ?? 16 << 20) / STAGE_BYTES));
    for (let i = 0; i < n; i++) this.free.push(stage());
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'free') {
        this.free.push(stage(m.data, m.meta));
        this.counts.recorded += m.recorded;
        this.counts.truncated = m.truncated;
      } else if (m.type === 'closed') {
        if (m.truncated !== undefined) this.counts.truncated = m.truncated;
        if (m.error) this.failed ??= new Error(m.error);
        this.onClosed?.(m);
      }
    });
    worker.on('error', (e) => {
      this.failed ??= e;
      this.onClosed?.({ error: e.message });
    });
    this.arm();
  }

  /** Opens (truncates) `path` in a worker thread; compressed by its name (.zst, .gz). */
  static async open(path: string, o: TraceRecorderOptions): Promise<TraceRecorder> {
    const digester = o.digestOnWorker ? undefined : nativePageDigests;
    const worker = new Worker(new URL('./trace-writer-worker.mjs', import.meta.url), { workerData: { path, compression: traceCompression(path), digested: digester !== undefined } });
    const first = await new Promise<WorkerMessage>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (first.type !== 'open') {
      await worker.terminate();
      throw new UsageError(`--record-trace: ${first.type === 'closed' && first.error ? first.error : 'the trace writer did not start'}`);
    }
    return new TraceRecorder(worker, o, digester);
  }

  stats(): TraceRecorderStats {
    return { ...this.counts };
  }

  /** Why recording stopped early, if it did. */
  get error(): Error | undefined {
    return this.failed;
  }

  read(atMs: number, offset: number, data: Uint8Array): void {
    this.add(atMs, offset, data, KIND.read);
  }

  write(atMs: number, offset: number, data: Uint8Array): void {
    this.add(atMs, offset, data, KIND.write);
  }

  zero(atMs: number, offset: number, length: number): void {
    if (length > 0) this.entry(atMs, offset, length, KIND.zero, undefined);
  }

  /** Sends what is staged, ends the file and waits for it (with a `# dropped` line if any were). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.timer?.cancel();
      this.send();
      const closed = new Promise<{ error?: string }>((r) => (this.onClosed = r));
      this.worker.postMessage({ type: 'end', dropped: this.counts.dropped });
      await closed;
      await this.worker.terminate();
      if (this.failed) throw new UsageError(`--record-trace: writing the trace failed: ${this.failed.message}`);
    })();
    return this.closing;
  }

  private add(atMs: number, offset: number, data: Uint8Array, kind: number): void {
    for (let at = 0; at < data.length; at += STAGE_BYTES) {
      const piece = data.subarray(at, Math.min(data.length, at + STAGE_BYTES));
      if (!this.entry(atMs, offset + at, piece.length, kind, piece)) return;
    }
  }

  /** Stages one request; false (and counted) when it was dropped. */
  private entry(atMs: number, offset: number, length: number, kind: number, data: Uint8Array | undefined): boolean {
    if (this.closing) return false;
    const pages = data && this.digester ? fiuPages(offset, data.length) : 0;
    const need = data === undefined ? 0 : this.digester ? pages * DIGEST_BYTES : data.length;
    let s = this.current;
    if (s && (s.n === STAGE_ENTRIES || s.used + need > STAGE_BYTES)) {
      this.send();
      s = undefined;
    }
    if (!s) {
      s = this.failed ? undefined : this.free.pop();
      if (!s) {
        this.dropped(atMs);
        return false;
      }
      s.n = 0;
      s.used = 0;
      this.current = s;
    }
    if (data && this.digester) {
      let n = this.digester.digestPages(data, s.bytes, s.used);
      // The sector-widened range's extra page, if any: the digest of the last byte (as the worker's fallback does).
      for (; n < pages; n++) this.digester.digestPages(data.subarray(data.length - 1), s.bytes, s.used + n * DIGEST_BYTES);
      s.used += need;
    } else if (data) {
      s.bytes.set(data, s.used);
      s.used += data.length;
    }
    const e = 4 * s.n++;
    s.entries[e] = atMs;
    s.entries[e + 1] = offset;
    s.entries[e + 2] = length;
    s.entries[e + 3] = kind;
    return true;
  }

  private send(): void {
    const s = this.current;
    if (!s || s.n === 0) return;
    this.current = undefined;
    this.worker.postMessage({ type: 'batch', data: s.data, meta: s.meta, n: s.n, used: s.used }, [s.data, s.meta]);
  }

  private arm(): void {
    this.timer = this.o.clock.setTimer(FLUSH_MS, () => {
      this.send();
      if (!this.closing) this.arm();
    });
  }

  private dropped(atMs: number): void {
    this.counts.dropped++;
    if (atMs - this.lastWarnMs >= DROP_WARN_MS) {
      this.lastWarnMs = atMs;
      this.o.onDrop?.(this.counts.dropped);
    }
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
