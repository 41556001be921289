/**
 * What the simulator's users name — a workload (a profile, or `trace:FILE` of
 * FIU IODedup records), an algorithm variant, a link — turned into runs.
 * Shared by `flimcd simulate`, `flimcd plan` and `npm run bench:paper`.
 */
import { TraceFormatError, UsageError } from '../errors.ts';
import { ALGORITHMS, resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import type { RequestSource } from '../workload/executor.ts';
import { RequestGenerator } from '../workload/generator.ts';
import { PROFILE_NAMES, resolveProfile, type ProfileName } from '../workload/profiles.ts';
import { FiuReplay, parseFiuTrace, type FiuRecord } from '../workload/fiu-trace.ts';
import { readTraceText } from '../workload/trace-recorder.ts';
import { FilesGenerator } from '../workload/files-generator.ts';
import type { SimDisk } from './sim-disk.ts';
import { simulate, type SimulationResult } from './simulate.ts';

/** A request source factory: every run replays the same requests from the start. */
export type Workload = { name: string; requests: () => RequestSource };

export interface WorkloadSpec {
  /** A profile name, or `trace:FILE` (FILE may be .zst or .gz compressed). */
  spec: string;
  imageBytes: number;
  bandwidthBps: number;
  blockSize: number;
  seed: number;
  /** Traces: replay this many times faster than recorded. */
  timeScale?: number;
}

export function parseWorkload(w: WorkloadSpec): Workload {
  if (w.spec.startsWith('trace:')) {
    const file = w.spec.slice('trace:'.length);
    let text: string;
    try {
      text = readTraceText(file);
    } catch (e) {
      throw new UsageError(`--workload: cannot read trace ${file}: ${(e as Error).message}`);
    }
    // Parsed up front: a malformed line fails here with its line number, not mid-simulation.
    let records: FiuRecord[];
    try {
      records = [...parseFiuTrace(text)];
    } catch (e) {
      if (e instanceof TraceFormatError) throw new UsageError(`--workload: trace ${file}: ${e.message}`);
      throw e;
    }
    if (records.length === 0) throw new UsageError(`--workload: trace ${file} has no requests`);
    return { name: `trace:${file}`, requests: () => new FiuReplay(records, { imageBytes: w.imageBytes, speed: w.timeScale ?? 1 }) };
  }
  if (w.spec === 'files') {
    return { name: 'files', requests: () => new FilesGenerator({ imageBytes: w.imageBytes, linkBitsPerSecond: w.bandwidthBps, seed: w.seed }) };
  }
  if (!(PROFILE_NAMES as readonly string[]).includes(w.spec)) {
    throw new UsageError(`--workload: unknown workload "${w.spec}" (a profile: ${PROFILE_NAMES.join(', ')}, files; or trace:FILE)`);
  }
  const params = resolveProfile(w.spec as ProfileName, { linkBitsPerSecond: w.bandwidthBps, imageBytes: w.imageBytes, blockSize: w.blockSize }).params;
  return { name: w.spec, requests: () => new RequestGenerator(params, w.seed) };
}

/** An algorithm with some optimizations switched off: "flimcd", "flimcd-no-prefetch", … */
export interface Variant {
  name: string;
  algorithm: Algorithm;
  features: Features;
}

const ABLATIONS: Array<[keyof Features, string]> = [['dedup', 'dedup'], ['compress', 'zstd'], ['hotOrder', 'hot-order'], ['prefetch', 'prefetch']];

/** The four algorithms, then flimcd with each optimization off in turn (the paper's ablation). */
export function paperVariants(): Variant[] {
  const out: Variant[] = ALGORITHMS.map((a) => ({ name: a, algorithm: a, features: resolveFeatures(a) }));
  for (const [k, label] of ABLATIONS) out.push({ name: `flimcd-no-${label}`, algorithm: 'flimcd', features: resolveFeatures('flimcd', { [k]: false }) });
  return out;
}

/** `all`, an algorithm, or `flimcd-no-X`, comma-separated. */
export function parseVariants(text: string): Variant[] {
  const all = paperVariants();
  const out: Variant[] = [];
  for (const name of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (name === 'all') out.push(...all.slice(0, ALGORITHMS.length));
    else if (name === 'ablation') out.push(...all);
    else {
      const v = all.find((x) => x.name === name);
      if (!v) throw new UsageError(`--algorithm: unknown algorithm "${name}" (choose from: all, ablation, ${all.map((x) => x.name).join(', ')})`);
      out.push(v);
    }
  }
  if (out.length === 0) throw new UsageError('--algorithm: name at least one algorithm');
  return out;
}

/**
 * The ablation switches (`--[no-]hot-order`, `--[no-]prefetch`, `--[no-]dedup`,
 * `--[no-]compress`) applied to every variant, postcopy included. A variant
 * a switch changes is renamed after it (`postcopy+hot-order`,
 * `flimcd-no-prefetch`), so rows stay told apart; one it leaves as it was keeps its name.
 */
export function applySwitches(variants: readonly Variant[], switches: Partial<Features>): Variant[] {
  return variants.map((v) => {
    const features = { ...v.features };
    let name = v.name;
    for (const [k, label] of ABLATIONS) {
      const want = switches[k];
      if (want === undefined || want === features[k]) continue;
      features[k] = want;
      name += want ? `+${label}` : `-no-${label}`;
    }
    return { name, algorithm: v.algorithm, features };
  });
}

export interface RunSpec {
  image: SimDisk;
  /** What the target holds before the migration: a base image in its replica index (base-image.ts), or nothing. */
  baseImage?: SimDisk;
  workload: Workload;
  variant: Variant;
  bandwidthBps: number;
  rttMs: number;
  lossRate?: number;
  warmupMs?: number;
}

export function runScenario(r: RunSpec): Promise<SimulationResult> {
  return simulate({
    image: r.image, baseImage: r.baseImage, algorithm: r.variant.algorithm, features: r.variant.features, bandwidthBps: r.bandwidthBps, rttMs: r.rttMs, lossRate: r.lossRate,
    warmupMs: r.warmupMs, requests: r.workload.requests(), controlRequests: r.workload.requests(),
  });
}

/** The measures a simulation row reports (docs/design.md names, plus the guest's: guest_slowdown against the paired control run). */
export function summarize(variant: string, res: SimulationResult) {
  const x = res.report;
  return {
    algorithm: variant,
    verified: x.verified,
    time_total_s: x.time_total_s,
    time_precopy_s: x.time_precopy_s,
    time_postcopy_s: x.time_postcopy_s,
    downtime_ms: x.downtime_ms,
    wire_bytes: x.wire_bytes,
    block_miss_rate: x.block_miss_rate,
    blocks_read_postcopy: x.blocks_read_postcopy,
    write_fetches: x.write_fetches,
    demand_fetch_rate: x.demand_fetch_rate,
    rounds: x.rounds,
    guest_slowdown: res.guest.guest_slowdown === null ? null : Math.round(res.guest.guest_slowdown * 1000) / 1000,
    sim_wall_s: Math.round(res.wall_s * 100) / 100,
  };
}
export type SummaryRow = ReturnType<typeof summarize>;
