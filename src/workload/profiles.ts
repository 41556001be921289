/**
 * Named, Iometer-like workload profiles (docs/design.md, Workloads) and their
 * resolution against a link and an image into concrete request rates.
 *
 * What makes a workload hard for migration is how fast it dirties new data
 * relative to the link, so each profile is pinned to that: the distinct bytes
 * newly dirtied per second (dirty-meter.ts: 64 KiB blocks, 1 s windows) are a
 * fixed share of the link bandwidth. Everything else (mix, sizes, skew) is
 * fixed per profile; only the request rate is solved for. Resolution runs the
 * real generator (dry, no I/O) with a calibration seed that is not the run's
 * seed, and scales IOPS until the measured rate is within 2 % of the target:
 * rewrites of hot blocks, sequential runs sharing a block, multi-block
 * requests and duplicate writes are all accounted for exactly as the
 * generator produces them, not by a formula that could drift from it.
 *
 * Common to light, moderate, heavy and mail:
 * - reads are 70 % of requests;
 * - areas of 1 MiB; Zipf popularity over areas with the exponent solved so
 *   that the hottest 10 % of areas get 80 % of writes (s ≈ 1.0 for a 20 GiB
 *   image, larger for small images: fewer areas need more skew);
 * - half of the reads follow the write popularity, half an independent one;
 * - 4 sequential streams per operation type.
 *
 * Profile numbers (the rationale is each profile's description):
 *
 * | profile  | dirty/link | sizes (weight)                             | random | dup writes        |
 * |----------|-----------:|--------------------------------------------|-------:|-------------------|
 * | idle     |        0 % | 4 KiB reads only, fixed 2 IOPS             |  100 % | –                 |
 * | light    |        5 % | 4 KiB .7, 16 KiB .2, 64 KiB .1             |   80 % | –                 |
 * | moderate |       20 % | 8 KiB                                      |   90 % | –                 |
 * | heavy    |       60 % | 4 KiB .2, 16 KiB .3, 64 KiB .3, 256 KiB .2 |   60 % | –                 |
 * | mail     |       20 % | as moderate (+ 64 KiB message copies)      |   90 % | 50 % (pool of 16) |
 *
 * Resolved for a 20 GiB image (Zipf s = 1.022); "replay" is the rate measured
 * by replaying the generator 60 s with seeds 1-5 (not the calibration seed),
 * "10 s" the same workload measured with 10 s windows (hot blocks rewritten
 * within a window count once, so longer windows see less per second):
 *
 * | profile  | link     | IOPS (read/write)      | target     | replay      | 10 s |
 * |----------|----------|------------------------|------------|-------------|-----:|
 * | light    | 100 Mbit |    31.8 (22.3 / 9.5)   | 0.625 MB/s | 94 – 105 %  | 89 % |
 * | moderate | 100 Mbit |   132.9 (93.1 / 39.9)  | 2.5 MB/s   | 98 – 103 %  | 87 % |
 * | heavy    | 100 Mbit |   269.1 (188.4 / 80.7) | 7.5 MB/s   | 101 – 104 % | 81 % |
 * | mail     | 100 Mbit |   132.3 (92.6 / 39.7)  | 2.5 MB/s   | 99 – 104 %  | 88 % |
 * | light    | 1 Gbit   |   380.7 (266.5 / 114.2) | 6.25 MB/s | 99 – 103 %  | 83 % |
 * | moderate | 1 Gbit   |  1613 (1129 / 484)     | 25 MB/s    | 100 – 101 % | 75 % |
 * | heavy    | 1 Gbit   |  3528 (2470 / 1058)    | 75 MB/s    | 102 – 103 % | 72 % |
 * | mail     | 1 Gbit   |  1573 (1101 / 472)     | 25 MB/s    | 99 – 102 %  | 75 % |
 */
import { UsageError } from '../errors.ts';
import { DirtyMeter } from './dirty-meter.ts';
import { RequestGenerator, validateParams, type GeneratorParams } from './generator.ts';

export const PROFILE_NAMES = ['idle', 'light', 'moderate', 'heavy', 'mail'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** A named profile: the generator's shape parameters; size, block size and rate come at resolution. */
export interface ProfileSpec extends Omit<GeneratorParams, 'imageBytes' | 'blockSize' | 'iops'> {
  name: string;
  description: string;
  /** Distinct bytes newly dirtied per second as a share of link bandwidth; 0 for read-only profiles. */
  dirtyShareOfLink: number;
  /** Request rate for profiles with no dirtying target (idle). */
  fixedIops?: number;
}

const KiB = 1024;

const COMMON = {
  readShare: 0.7,
  hotAreaShare: 0.1,
  hotWriteShare: 0.8,
  readFollowsWriteShare: 0.5,
  dupWriteShare: 0,
  dupPoolSize: 0,
  sequentialStreams: 4,
  arrival: 'poisson',
} as const;

export const PROFILES: Record<ProfileName, ProfileSpec> = {
  idle: {
    ...COMMON,
    name: 'idle',
    description: 'An idle guest: no writes, a trickle of 4 KiB random reads (2 per second, cron and daemons waking up).',
    dirtyShareOfLink: 0,
    fixedIops: 2,
    readShare: 1,
    randomShare: 1,
    sizes: [{ bytes: 4 * KiB, weight: 1 }],
  },
  light: {
    ...COMMON,
    name: 'light',
    description: 'Desktop / small web server: mostly 4 KiB requests with some 16-64 KiB file I/O, 80 % random; dirties 5 % of the link per second.',
    dirtyShareOfLink: 0.05,
    randomShare: 0.8,
    sizes: [{ bytes: 4 * KiB, weight: 0.7 }, { bytes: 16 * KiB, weight: 0.2 }, { bytes: 64 * KiB, weight: 0.1 }],
  },
  moderate: {
    ...COMMON,
    name: 'moderate',
    description: 'OLTP database: 8 KiB pages, 90 % random; dirties 20 % of the link per second.',
    dirtyShareOfLink: 0.2,
    randomShare: 0.9,
    sizes: [{ bytes: 8 * KiB, weight: 1 }],
  },
  heavy: {
    ...COMMON,
    name: 'heavy',
    description: 'File server / batch job: 4-256 KiB requests, 40 % sequential; dirties 60 % of the link per second (pre-copy barely converges).',
    dirtyShareOfLink: 0.6,
    randomShare: 0.6,
    sizes: [{ bytes: 4 * KiB, weight: 0.2 }, { bytes: 16 * KiB, weight: 0.3 }, { bytes: 64 * KiB, weight: 0.3 }, { bytes: 256 * KiB, weight: 0.2 }],
  },
  mail: {
    ...COMMON,
    name: 'mail',
    description: 'Mail server: moderate, but half of the writes store a message that already exists (one whole 64 KiB block copied from a pool of 16 messages; the first store of each is new content); dirties 20 % of the link per second.',
    dirtyShareOfLink: 0.2,
    randomShare: 0.9,
    sizes: [{ bytes: 8 * KiB, weight: 1 }],
    dupWriteShare: 0.5,
    dupPoolSize: 16,
  },
};

export function getProfile(name: string): ProfileSpec {
  const p = (PROFILES as Record<string, ProfileSpec>)[name];
  if (!p) throw new UsageError(`unknown profile "${name}" (choose one of: ${PROFILE_NAMES.join(', ')})`);
  return p;
}

export interface ResolveOptions {
  /** Link bandwidth in bits per second. */
  linkBitsPerSecond: number;
  imageBytes: number;
  /** Tracking block size (default 64 KiB). */
  blockSize?: number;
  /** Dirty-rate window (default 1000 ms). */
  windowMs?: number;
  /** Seed of the calibration dry run (default fixed; deliberately not the run's seed). */
  calibrationSeed?: number;
}

export interface ResolvedProfile {
  profile: ProfileSpec;
  params: GeneratorParams;
  linkBitsPerSecond: number;
  imageBytes: number;
  blockSize: number;
  windowMs: number;
  iops: number;
  readIops: number;
  writeIops: number;
  /** The pinned target: dirtyShareOfLink × link bytes per second. */
  targetDirtyBytesPerSecond: number;
  /** What the calibration dry run measured at the resolved rate. */
  calibratedDirtyBytesPerSecond: number;
  calibration: { seed: number; windows: number; iterations: number };
}

export const CALIBRATION_SEED = 0x0c0ffee5;
/** Most IOPS a profile may resolve to; beyond that the target is unreachable on this image. */
export const MAX_IOPS = 250_000;

/** Measures a parameter set's distinct-dirtying rate with a dry run of the generator. */
export function measureDirtyRate(params: GeneratorParams, seed: number, windows: number, windowMs = 1000): number {
  const g = new RequestGenerator(params, seed);
  const meter = new DirtyMeter(params.imageBytes, { blockSize: params.blockSize, windowMs });
  const end = windows * windowMs;
  for (;;) {
    const r = g.next();
    if (!r || r.atMs >= end) break;
    if (r.op === 'write') meter.write(r.atMs, r.offset, r.length);
  }
  return meter.bytesPerSecond(windows);
}

function baseParams(spec: ProfileSpec, imageBytes: number, blockSize: number, iops: number): GeneratorParams {
  return {
    imageBytes, blockSize, iops, arrival: spec.arrival, readShare: spec.readShare, randomShare: spec.randomShare,
    sizes: spec.sizes, hotAreaShare: spec.hotAreaShare, hotWriteShare: spec.hotWriteShare,
    readFollowsWriteShare: spec.readFollowsWriteShare, dupWriteShare: spec.dupWriteShare, dupPoolSize: spec.dupPoolSize,
    sequentialStreams: spec.sequentialStreams,
  };
}

/** Resolves a profile against a link and an image into a generator's concrete parameters. */
export function resolveProfile(profile: ProfileName | ProfileSpec, opts: ResolveOptions): ResolvedProfile {
  const spec = typeof profile === 'string' ? getProfile(profile) : profile;
  const blockSize = opts.blockSize ?? 65536;
  const windowMs = opts.windowMs ?? 1000;
  const seed = opts.calibrationSeed ?? CALIBRATION_SEED;
  if (!(opts.linkBitsPerSecond > 0)) throw new UsageError('link bandwidth must be positive');
  const target = (spec.dirtyShareOfLink * opts.linkBitsPerSecond) / 8;
  const done = (params: GeneratorParams, measured: number, windows: number, iterations: number): ResolvedProfile => ({
    profile: spec, params, linkBitsPerSecond: opts.linkBitsPerSecond, imageBytes: opts.imageBytes, blockSize, windowMs,
    iops: params.iops, readIops: params.iops * spec.readShare, writeIops: params.iops * (1 - spec.readShare),
    targetDirtyBytesPerSecond: target, calibratedDirtyBytesPerSecond: measured, calibration: { seed, windows, iterations },
  });

  if (spec.dirtyShareOfLink <= 0 || spec.readShare >= 1) {
    const params = baseParams(spec, opts.imageBytes, blockSize, spec.fixedIops ?? 0);
    validateParams(params);
    return done(params, 0, 0, 0);
  }

  // A window cannot dirty more than the image; with a skewed hot set, anything near that needs
  // absurd request rates, so refuse early with the reason rather than after a long search.
  const windowTarget = (target * windowMs) / 1000;
  if (windowTarget > opts.imageBytes / 4) {
    throw new UsageError(
      `profile ${spec.name} must dirty ${(target / 1e6).toFixed(1)} MB of distinct data per second ` +
        `(${(spec.dirtyShareOfLink * 100).toFixed(0)} % of the link), more than a quarter of the ${(opts.imageBytes / 2 ** 20).toFixed(0)} MiB image: ` +
        'use a larger image or a slower link',
    );
  }

  const writeShare = 1 - spec.readShare;
  // First guess: every write dirties one new block.
  let iops = target / blockSize / writeShare;
  const windowsFor = (x: number) => Math.max(20, Math.min(300, Math.ceil(20000 / Math.max(1e-9, x * writeShare * (windowMs / 1000)))));
  let best = { iops, measured: 0, err: Infinity, windows: 0 };
  let prev: { iops: number; measured: number } | undefined;
  let iterations = 0;
  for (; iterations < 25; iterations++) {
    const windows = windowsFor(iops);
    const params = baseParams(spec, opts.imageBytes, blockSize, iops);
    const measured = measureDirtyRate(params, seed, windows, windowMs);
    const err = Math.abs(measured / target - 1);
    if (err < best.err) best = { iops, measured, err, windows };
    if (err < 0.02) break;
    // Secant in log-log space (the rate is close to a power of the IOPS), else proportional.
    let next: number;
    if (prev && measured > 0 && prev.measured > 0 && prev.measured !== measured && prev.iops !== iops) {
      const slope = Math.log(measured / prev.measured) / Math.log(iops / prev.iops);
      const s = Math.min(1.5, Math.max(0.05, slope));
      next = iops * Math.pow(target / measured, 1 / s);
    } else {
      next = measured > 0 ? (iops * target) / measured : iops * 4;
    }
    prev = { iops, measured };
    iops = Math.min(MAX_IOPS, Math.max(iops / 8, Math.min(iops * 8, next)));
    if (iops >= MAX_IOPS && prev.iops >= MAX_IOPS) break;
  }
  if (best.err > 0.1) {
    throw new UsageError(
      `profile ${spec.name} cannot reach ${(target / 1e6).toFixed(2)} MB/s of newly dirtied data on a ${(opts.imageBytes / 2 ** 20).toFixed(0)} MiB image ` +
        `(best: ${(best.measured / 1e6).toFixed(2)} MB/s at ${best.iops.toFixed(0)} IOPS): use a larger image or a slower link`,
    );
  }
  return done(baseParams(spec, opts.imageBytes, blockSize, best.iops), best.measured, best.windows, iterations + 1);
}
