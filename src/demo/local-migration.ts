import type { Runtime } from '../runtime.ts';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { generateImage, type ImageStats } from '../workload/image-gen.ts';
import { startAgentPair } from './agent-pair.ts';
import { NbdClient } from '../nbd/client.ts';
import type { Disk } from '../block/disk.ts';
import { resolveProfile, PROFILE_NAMES } from '../workload/profiles.ts';
import { RequestGenerator } from '../workload/generator.ts';
import { ExpectedDisk, finalVerify, type FinalVerifyResult } from '../workload/expected.ts';
import { WorkloadExecutor, type ExecutorResult, type RequestSource } from '../workload/executor.ts';
import type { Algorithm, Features } from '../policy/algorithm.ts';
import type { MigrationReport, Phase } from '../migrate/report.ts';
import type { Address } from '../util/address.ts';
import type { LinkSecurity } from '../wire/secure-link.ts';

export interface LocalMigrationOptions {
  dir: string;
  size: number;
  bandwidthBps: number;
  rttMs: number;
  workload: (typeof PROFILE_NAMES)[number];
  algorithm: Algorithm;
  /** Overrides of the algorithm's feature defaults (ablation). */
  features?: Partial<Features>;
  /** The workload runs at the source this long before the migration starts (the heat map fills). */
  warmupMs?: number;
  /** Requests to run instead of the named profile's generator (e.g. a trace replay). */
  requests?: RequestSource;
  blockSize: number;
  seed: number;
  /** Replica index at the target. */
  indexDir?: string;
  /** Runs once the source image is generated, before the agents start (e.g. to register a base image in indexDir). */
  beforeStart?: (paths: { source: string }) => Promise<void>;
  /** Link credentials; default a fresh PSK, so the demo's link is TLS. */
  security?: LinkSecurity;
  log: Logger;
  onPhase?: (p: Phase) => void;
  onStatus?: (s: Record<string, unknown>) => void;
  /** What both agents run on (default REAL_RUNTIME: ids and zstd on the event loop); the caller closes its work. */
  runtime?: Runtime;
}

export interface LocalMigrationResult {
  report: MigrationReport;
  image: ImageStats;
  workload: ExecutorResult;
  finalVerify: FinalVerifyResult;
  /** The target image equals what the workload wrote over the original, everywhere. */
  workloadVerified: boolean;
}

/**
 * A whole migration on this machine: a generated image, a source and a target
 * agent, the WAN emulator between them, and a workload that writes and checks
 * through the source export and moves to the target export at cut-over, as a
 * VM would. Used by `flimcd demo` and by the end-to-end test.
 */
export async function runLocalMigration(o: LocalMigrationOptions): Promise<LocalMigrationResult> {
  const src = join(o.dir, 'source.img');
  const dst = join(o.dir, 'target.img');
  const image = await generateImage(src, o.size, { seed: o.seed });
  await o.beforeStart?.({ source: src });

  const pair = await startAgentPair({
    sourceImage: src, targetImage: dst, dir: o.dir, algorithm: o.algorithm, features: o.features, blockSize: o.blockSize,
    bandwidthBps: o.bandwidthBps, rttMs: o.rttMs, security: o.security, log: o.log,
    source: { onPhase: o.onPhase, runtime: o.runtime }, target: { indexDir: o.indexDir, runtime: o.runtime },
  });
  const { source, target } = pair;
  const opened: Disk[] = [];
  let expected: ExpectedDisk | undefined;
  const timer = o.onStatus ? setInterval(() => o.onStatus!(source.status()), 1000) : undefined;
  try {
    const primary = await NbdClient.connect(source.nbdAddress);
    opened.push(primary);
    // Never-written pages are checked against the source image: frozen at cut-over, equal to the original there.
    expected = await ExpectedDisk.create(o.size, o.seed, { base: src });
    const requests = o.requests ?? new RequestGenerator(resolveProfile(o.workload, { linkBitsPerSecond: o.bandwidthBps, imageBytes: o.size, blockSize: o.blockSize }).params, o.seed);
    const exec = new WorkloadExecutor({
      disk: primary,
      switchTo: async () => {
        const d = await NbdClient.connect(target.nbdAddress as Address);
        opened.push(d);
        return d;
      },
      requests,
      durationMs: 24 * 3600 * 1000,
      expected,
      blockSize: o.blockSize,
    });
    const running = exec.run();
    let report: MigrationReport;
    try {
      if (o.warmupMs) await new Promise((r) => setTimeout(r, o.warmupMs));
      report = await source.migrate();
      await target.result();
    } finally {
      exec.stop();
    }
    const workload = await running;
    if (workload.error) throw workload.error;
    const fin = await finalVerify(exec.disk, expected, { queueDepth: 16 });
    const workloadVerified = fin.mismatches === 0 && expected.stats.mismatches === 0;
    return { report, image, workload, finalVerify: fin, workloadVerified };
  } finally {
    if (timer) clearInterval(timer);
    await Promise.all(opened.map((d) => d.close().catch(() => {})));
    await expected?.close();
    await pair.close();
  }
}
