import { join } from 'node:path';
import type { Logger } from 'pino';
import { generateImage, type ImageStats } from '../workload/image-gen.ts';
import { SourceAgent } from '../migrate/source-agent.ts';
import { TargetAgent } from '../migrate/target-agent.ts';
import { WanProxy } from '../link/proxy.ts';
import { NbdClient } from '../nbd/client.ts';
import type { Disk } from '../block/disk.ts';
import { resolveProfile, PROFILE_NAMES } from '../workload/profiles.ts';
import { RequestGenerator } from '../workload/generator.ts';
import { ExpectedDisk, finalVerify, type FinalVerifyResult } from '../workload/expected.ts';
import { WorkloadExecutor, type ExecutorResult, type RequestSource } from '../workload/executor.ts';
import { resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import type { MigrationReport, Phase } from '../migrate/report.ts';
import type { Address } from '../util/address.ts';
import { ephemeralPsk, type LinkSecurity } from '../wire/secure-link.ts';

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

  const security = o.security ?? ephemeralPsk();
  const target = new TargetAgent({ image: dst, security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(o.dir, 'target.sock') }, log: o.log.child({ agent: 'target' }), indexDir: o.indexDir });
  const targetLink = await target.listen();
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: targetLink, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
  const wanAddr = await wan.listen();
  const source = await SourceAgent.start({
    image: src, security, nbd: { kind: 'unix', path: join(o.dir, 'source.sock') }, to: wanAddr, algorithm: o.algorithm, blockSize: o.blockSize,
    bandwidthBps: o.bandwidthBps, log: o.log.child({ agent: 'source' }), onPhase: o.onPhase, features: resolveFeatures(o.algorithm, o.features),
  });
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
    await source.close().catch(() => {});
    await wan.close().catch(() => {});
    await target.close().catch(() => {});
  }
}
