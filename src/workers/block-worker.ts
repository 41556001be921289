/**
 * One worker thread of the block-work pool (worker-pool.ts): content ids and
 * zstd on blocks it is handed. Buffers come in transferred and go back
 * transferred; each reply carries the job's number.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { hashOf, isContentIdFormat } from '../content/content-id.ts';
import { BlockCompressor, BlockDecompressor } from '../wire/block-codec.ts';
import type { WorkerJob, WorkerReply } from './worker-protocol.ts';

const format: unknown = (workerData as { format?: unknown } | null)?.format;
if (!isContentIdFormat(format)) throw new TypeError(`block worker: unknown content id format ${String(format)}`);
const hash = hashOf(format);
const compressor = new BlockCompressor(1);
const decompressor = new BlockDecompressor();

/** A buffer that owns its whole ArrayBuffer can be transferred as is; anything else is copied into one that does. */
function ownBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new Uint8Array(b).buffer;
}

function run(job: WorkerJob): { reply: WorkerReply; transfer: ArrayBuffer[] } {
  if (job.op === 'encode') {
    const block = Buffer.from(job.block, 0, job.length);
    const id = job.hash ? new Uint8Array(hash(block)) : undefined;
    let payload: ArrayBuffer | undefined;
    let ms = 0;
    if (job.level > 0) {
      compressor.level = job.level;
      const c = compressor.compress(block);
      ms = c.ms;
      if (c.compressed) payload = new Uint8Array(c.payload).buffer; // the compressed bytes only, in memory of their own
    }
    return { reply: { job: job.job, block: job.block, length: job.length, id, payload, ms }, transfer: payload ? [job.block, payload] : [job.block] };
  }
  const out = decompressor.decompress(Buffer.from(job.payload), job.length);
  const id = job.hash ? new Uint8Array(hash(out)) : undefined;
  const block = ownBuffer(out);
  return { reply: { job: job.job, block, length: job.length, id, payload: undefined, ms: 0 }, transfer: [block] };
}

parentPort!.on('message', (job: WorkerJob) => {
  try {
    const { reply, transfer } = run(job);
    parentPort!.postMessage(reply, transfer);
  } catch (e) {
    parentPort!.postMessage({ job: job.job, error: (e as Error).message } satisfies WorkerReply);
  }
});
