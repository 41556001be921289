import type { Command } from 'commander';
import { CONTENT_ID_FORMATS, DEFAULT_CONTENT_ID_FORMAT, isContentIdFormat, type ContentIdFormat } from '../content/content-id.ts';
import { UsageError } from '../errors.ts';
import { realRuntime, type Runtime } from '../runtime.ts';
import { defaultPoolSize } from '../workers/worker-pool.ts';

/** The most worker threads `--workers` takes (each holds a few blocks; more than the cores only contend). */
const MAX_WORKERS = 64;

export interface RuntimeFlags {
  contentHash: string;
  workers?: string;
}

/** `--content-hash`: how agents and the replica index name content (both agents and the index must agree). */
export function parseContentHash(value: string, flag = '--content-hash'): ContentIdFormat {
  const v = value.trim().toLowerCase();
  if (!isContentIdFormat(v)) throw new UsageError(`${flag} must be one of ${CONTENT_ID_FORMATS.join(', ')}, not ${JSON.stringify(value)}`);
  return v;
}

/** `--workers`: worker threads for content ids and zstd; 0 runs them on the event loop. */
export function parseWorkers(value: string | undefined): number {
  // In-thread by default: one message each way per block costs more CPU than the pool saves when both
  // agents share two cores (bench:cpu); the pool pays where an agent has cores to spare.
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value.trim()) || Number(value) > MAX_WORKERS) throw new UsageError(`--workers must be a whole number from 0 to ${MAX_WORKERS}, not ${JSON.stringify(value)}`);
  return Number(value);
}

/** The options an agent command takes for what it runs on. */
export function addRuntimeOptions(cmd: Command): Command {
  return cmd
    .option('--content-hash <name>', `content id format, ${CONTENT_ID_FORMATS.join(' or ')}; both agents (and a replica index) must use the same`, DEFAULT_CONTENT_ID_FORMAT)
    .option('--workers <n>', `worker threads for content ids and zstd (default 0: on the event loop; ${defaultPoolSize()} = this host's cores, at most 2, helps where the agent has cores to spare)`);
}

/** The agent's runtime from its flags: real bytes, the wall clock, a worker pool. Close `work` when done. */
export function runtimeFromFlags(o: RuntimeFlags): Runtime {
  return realRuntime({ contentIds: parseContentHash(o.contentHash), workers: parseWorkers(o.workers) });
}
