/**
 * Runs N generated inputs through a target with bounds: each input must
 * settle within `perInputMs` (no hang), every failure must be one of ours
 * (`accept`), no uncaught exception or unhandled rejection may occur, and the
 * heap and Buffer memory after GC may not grow past `maxHeapGrowthBytes` (no
 * leak per input).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** JS heap plus Buffer memory (which lives outside the heap). */
function heldBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export interface FuzzConfig {
  seed: number;
  inputs: number;
  /** Inputs in flight at once. */
  concurrency: number;
  perInputMs: number;
  maxHeapGrowthBytes: number;
}

export interface FuzzResult {
  inputs: number;
  seconds: number;
  heapGrowthBytes: number;
  /** Outcome tallies, e.g. how many inputs reached transmission. */
  outcomes: Record<string, number>;
}

export class FuzzFailure extends Error {}

/** Settings from the environment: FLIMCD_FUZZ_INPUTS, FLIMCD_FUZZ_SEED, FLIMCD_FUZZ_INDEX (replay one input). */
export function fuzzConfig(defaults: { inputs: number }): FuzzConfig & { only?: number } {
  const inputs = Number(process.env.FLIMCD_FUZZ_INPUTS ?? defaults.inputs);
  const seed = Number(process.env.FLIMCD_FUZZ_SEED ?? 1);
  const only = process.env.FLIMCD_FUZZ_INDEX !== undefined ? Number(process.env.FLIMCD_FUZZ_INDEX) : undefined;
  return { seed, inputs, only, concurrency: Number(process.env.FLIMCD_FUZZ_CONCURRENCY ?? 64), perInputMs: 60_000, maxHeapGrowthBytes: 48 * 1024 * 1024 };
}

/**
 * `run(index)` generates and runs input `index`, resolving with an outcome
 * label; it rejects (or throws) for a finding.
 */
export async function fuzz(cfg: FuzzConfig & { only?: number }, name: string, run: (index: number) => Promise<string> | string): Promise<FuzzResult> {
  const outcomes: Record<string, number> = {};
  let finding: Error | undefined;
  let current = -1;
  const onUncaught = (e: unknown) => { finding ??= new FuzzFailure(`${name}: uncaught ${(e as Error)?.stack ?? e} (seed ${cfg.seed}, near index ${current})`); };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const started = performance.now();
  let baseline = 0;
  const indices = cfg.only !== undefined ? [cfg.only] : undefined;
  const total = indices ? 1 : cfg.inputs;
  const warm = Math.min(2000, Math.floor(total / 10));
  try {
    let next = 0;
    const worker = async () => {
      while (!finding && next < total) {
        const i = indices ? indices[next++]! : next++;
        current = i;
        if (i === warm) { gc(); baseline = heldBytes(); }
        let timer: NodeJS.Timeout | undefined;
        try {
          const label = await Promise.race([
            Promise.resolve().then(() => run(i)),
            new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new FuzzFailure(`hang: input did not settle within ${cfg.perInputMs} ms`)), cfg.perInputMs))),
          ]);
          outcomes[label] = (outcomes[label] ?? 0) + 1;
        } catch (e) {
          finding ??= new FuzzFailure(`${name}: input ${i} (replay: FLIMCD_FUZZ_SEED=${cfg.seed} FLIMCD_FUZZ_INDEX=${i}): ${(e as Error)?.stack ?? e}`);
        } finally {
          clearTimeout(timer);
        }
      }
    };
    await Promise.all(Array.from({ length: indices ? 1 : cfg.concurrency }, worker));
    // Let connections torn down by the last inputs finish before measuring.
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
  if (finding) throw finding;
  gc();
  const heapGrowthBytes = baseline ? heldBytes() - baseline : 0;
  if (heapGrowthBytes > cfg.maxHeapGrowthBytes) throw new FuzzFailure(`${name}: heap grew by ${(heapGrowthBytes / 1048576).toFixed(1)} MiB over ${total} inputs (limit ${cfg.maxHeapGrowthBytes / 1048576} MiB)`);
  return { inputs: total, seconds: (performance.now() - started) / 1000, heapGrowthBytes, outcomes };
}
