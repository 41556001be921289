/**
 * The simulator checked against reality: one case run twice on the same
 * content and the same requests — real source and target agents through the
 * WAN emulator (src/demo/local-migration.ts), then the simulator on a scan of
 * the very image the agents migrated — and the measures compared.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { runLocalMigration } from '../demo/local-migration.ts';
import type { Algorithm } from '../policy/algorithm.ts';
import type { MigrationReport } from '../migrate/report.ts';
import { RequestGenerator } from '../workload/generator.ts';
import { resolveProfile, type ProfileName } from '../workload/profiles.ts';
import { scanImage } from './image-model.ts';
import { writeBaseFile } from './base-image.ts';
import { ReplicaIndex } from '../replica-index/replica-index.ts';
import { indexImage } from '../replica-index/image-scan.ts';
import { simulate, type SimulationResult } from './simulate.ts';
import { FiuReplay, type FiuRecord } from '../workload/fiu-trace.ts';

export interface ValidationCase {
  size: number;
  bandwidthBps: number;
  rttMs: number;
  algorithm: Algorithm;
  workload: ProfileName;
  seed: number;
  warmupMs: number;
  blockSize?: number;
  /**
   * The target holds the base image the VM was cloned from (base-image.ts):
   * this share of the source's non-zero blocks, written as a base file and
   * registered in the real target's replica index as `flimcd index add` does.
   */
  baseShare?: number;
  /**
   * Replay these recorded requests (a trace, e.g. testing/traces/) instead of
   * the `workload` profile, in both runs: folded into `size` as the simulator
   * folds them, `speed` times faster than recorded.
   */
  trace?: { records: readonly FiuRecord[]; speed: number };
  log: Logger;
}

export const COMPARED = ['time_total_s', 'wire_bytes', 'block_miss_rate'] as const;

export interface ValidationResult {
  real: MigrationReport;
  sim: MigrationReport;
  simRun: SimulationResult;
  realWall_s: number;
  /** |sim − real| / real per compared measure (0 when both are 0). */
  relError: Record<(typeof COMPARED)[number], number>;
}

export function relError(sim: number, real: number): number {
  if (real === 0) return sim === 0 ? 0 : Infinity;
  return Math.abs(sim - real) / Math.abs(real);
}

export async function validate(c: ValidationCase): Promise<ValidationResult> {
  const bs = c.blockSize ?? 65536;
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-validate-'));
  try {
    const basePath = join(dir, 'base.img');
    const indexDir = c.baseShare === undefined ? undefined : join(dir, 'index');
    const registerBase = async ({ source }: { source: string }) => {
      await writeBaseFile(source, basePath, bs, c.baseShare, c.seed);
      const ix = ReplicaIndex.open(indexDir!);
      try {
        await indexImage(ix, basePath, bs);
      } finally {
        await ix.close();
      }
    };
    const trace = c.trace;
    const replay = trace ? () => new FiuReplay(trace.records, { imageBytes: c.size, speed: trace.speed }) : undefined;
    const t0 = performance.now();
    const real = await runLocalMigration({
      dir, size: c.size, bandwidthBps: c.bandwidthBps, rttMs: c.rttMs, workload: c.workload, algorithm: c.algorithm,
      warmupMs: c.warmupMs, blockSize: bs, seed: c.seed, log: c.log, indexDir, beforeStart: indexDir ? registerBase : undefined,
      requests: replay?.(),
    });
    const realWall_s = (performance.now() - t0) / 1000;
    if (!real.report.verified || !real.workloadVerified) throw new Error('the real migration did not verify');
    // The agents generated this image from the seed; the workload did not change the source file before the run.
    const image = await scanImage(join(dir, 'source.img'), bs);
    const baseImage = indexDir ? await scanImage(basePath, bs) : undefined;
    const params = resolveProfile(c.workload, { linkBitsPerSecond: c.bandwidthBps, imageBytes: c.size, blockSize: bs }).params;
    const simRun = await simulate({
      image, baseImage, algorithm: c.algorithm, bandwidthBps: c.bandwidthBps, rttMs: c.rttMs, warmupMs: c.warmupMs,
      requests: replay?.() ?? new RequestGenerator(params, c.seed),
    });
    const sim = simRun.report;
    const err = {} as ValidationResult['relError'];
    for (const k of COMPARED) err[k] = relError(sim[k], real.report[k]);
    return { real: real.report, sim, simRun, realWall_s, relError: err };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
