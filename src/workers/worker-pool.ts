/**
 * A small pool of worker threads for content ids and zstd (block-work.ts),
 * so hashing and compression use every core instead of the event loop's one.
 *
 * - Size: `os.availableParallelism()` capped at 2 by default (these machines
 *   have 2 cores; the event loop needs some of one), at least 1.
 * - Back-pressure: at most `queuePerWorker` jobs per worker are posted at once;
 *   callers beyond that wait in arrival order.
 * - Buffers: a block that owns its whole ArrayBuffer (Buffer.allocUnsafe of
 *   4 KiB or more does) is transferred to the worker and back; any other
 *   (a view into a larger buffer) is copied once into memory of its own first.
 * - The worker file is found next to this one, .ts under tsx (tests) and .js
 *   when compiled, so both run it unchanged.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DEFAULT_CONTENT_ID_FORMAT, type ContentIdFormat } from '../content/content-id.ts';
import { IoError, ProtocolError } from '../errors.ts';
import type { BlockWork, Decoded, Encoded, EncodeRequest } from './block-work.ts';
import type { WorkerJob, WorkerReply } from './worker-protocol.ts';

/** Workers by default: both of these machines' cores, never more than the host has. */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.max(1, Math.min(2, cores));
}

export interface WorkerPoolOptions {
  /** Worker threads (default defaultPoolSize()). */
  size?: number;
  format?: ContentIdFormat;
  /** Jobs posted to one worker at once (default 4): enough to keep it busy between replies. */
  queuePerWorker?: number;
}

interface Job {
  resolve: (r: Extract<WorkerReply, { error?: undefined }>) => void;
  reject: (e: Error) => void;
  op: WorkerJob['op'];
}

interface Member {
  worker: Worker;
  jobs: Map<number, Job>;
}

/**
 * A worker running block-worker beside this module. Compiled (.js) it starts
 * as is. Under tsx (.ts) a worker does not inherit tsx's loader on Node 20, so
 * a two-line bootstrap registers tsx in the worker first and then imports it.
 */
function startWorker(workerData: unknown): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./block-worker.js', here), { workerData });
  const file = new URL('./block-worker.ts', here).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(file)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

/** A buffer that owns its whole ArrayBuffer is handed over as is; any other is copied once into one that does. */
function transferable(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new Uint8Array(b).buffer;
}

export class WorkerPool implements BlockWork {
  readonly threads: number;
  private readonly members: Member[];
  private readonly capacity: number;
  private posted = 0;
  private readonly waiting: Array<() => void> = [];
  private nextJob = 1;
  private closed: Error | undefined;

  constructor(o: WorkerPoolOptions = {}) {
    this.threads = Math.max(1, Math.floor(o.size ?? defaultPoolSize()));
    this.capacity = this.threads * Math.max(1, o.queuePerWorker ?? 4);
    const format = o.format ?? DEFAULT_CONTENT_ID_FORMAT;
    this.members = Array.from({ length: this.threads }, () => this.start(format));
  }

  private start(format: ContentIdFormat): Member {
    const worker = startWorker({ format });
    const m: Member = { worker, jobs: new Map() };
    // The pool must not keep a finished process alive; close() ends the workers properly.
    worker.unref();
    worker.on('message', (r: WorkerReply) => {
      const job = m.jobs.get(r.job);
      if (!job) return;
      m.jobs.delete(r.job);
      this.release();
      if (r.error !== undefined) job.reject(job.op === 'decode' ? new ProtocolError(r.error) : new IoError(`block worker: ${r.error}`));
      else job.resolve(r);
    });
    const failAll = (e: Error) => {
      for (const job of m.jobs.values()) {
        this.release();
        job.reject(e);
      }
      m.jobs.clear();
    };
    worker.on('error', (e) => failAll(new IoError(`block worker failed: ${e.message}`, { cause: e })));
    worker.on('exit', (code) => failAll(this.closed ?? new IoError(`block worker exited with code ${code}`)));
    return m;
  }

  private release(): void {
    this.posted--;
    this.waiting.shift()?.();
  }

  private async post(job: WorkerJob, transfer: ArrayBuffer[]): Promise<Extract<WorkerReply, { error?: undefined }>> {
    while (this.posted >= this.capacity && !this.closed) {
      await new Promise<void>((r) => this.waiting.push(r));
    }
    if (this.closed) throw this.closed;
    this.posted++;
    // The member with the fewest jobs: a slow job does not hold up the others.
    let m = this.members[0]!;
    for (const c of this.members) if (c.jobs.size < m.jobs.size) m = c;
    return new Promise((resolve, reject) => {
      m.jobs.set(job.job, { resolve, reject, op: job.op });
      m.worker.postMessage(job, transfer);
    });
  }

  /** Jobs posted to workers and not yet answered (at most size × queuePerWorker). */
  get postedJobs(): number {
    return this.posted;
  }

  async encode(r: EncodeRequest): Promise<Encoded> {
    const block = transferable(r.block);
    const reply = await this.post({ op: 'encode', job: this.nextJob++, block, length: r.block.length, hash: r.hash, level: r.level }, [block]);
    return {
      block: Buffer.from(reply.block, 0, reply.length),
      id: reply.id && Buffer.from(reply.id.buffer, reply.id.byteOffset, reply.id.byteLength),
      payload: reply.payload && Buffer.from(reply.payload),
      ms: reply.ms,
    };
  }

  async decode(payload: Buffer, length: number, hash: boolean): Promise<Decoded> {
    // The payload is a view into a received frame, which the channel may still hold: copied once.
    const own = new Uint8Array(payload).buffer;
    const reply = await this.post({ op: 'decode', job: this.nextJob++, payload: own, length, hash }, [own]);
    return { block: Buffer.from(reply.block, 0, reply.length), id: reply.id && Buffer.from(reply.id.buffer, reply.id.byteOffset, reply.id.byteLength) };
  }

  busySeconds(): number {
    let ms = 0;
    for (const m of this.members) ms += m.worker.performance.eventLoopUtilization().active;
    return ms / 1000;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = new IoError('block-work pool closed');
    for (const w of this.waiting.splice(0)) w();
    await Promise.all(this.members.map((m) => m.worker.terminate()));
  }
}
