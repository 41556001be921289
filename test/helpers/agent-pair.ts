/**
 * A real source and target agent pair (src/demo/agent-pair.ts) on a generated
 * image, for resume and end-to-end tests: the agents and the WAN emulator
 * (which can cut and stall the link) are exposed, nothing is hidden.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { generateImage } from '../../src/workload/image-gen.ts';
import { startAgentPair as startPair, type AgentPairOptions as PairOptions } from '../../src/demo/agent-pair.ts';
import type { SourceAgentOptions } from '../../src/migrate/source-agent.ts';
import type { TargetAgentOptions } from '../../src/migrate/target-agent.ts';
import type { Algorithm } from '../../src/policy/algorithm.ts';
import { log } from '../../src/util/log.ts';
import type { LinkSecurity } from '../../src/wire/secure-link.ts';
import type { Phase } from '../../src/migrate/report.ts';

export interface AgentPairOptions {
  dir: string;
  /** Size of the generated source image (ignored with `sourceImage`). */
  size?: number;
  algorithm: Algorithm;
  bandwidthBps: number;
  rttMs?: number;
  seed?: number;
  blockSize?: number;
  onPhase?: (p: Phase) => void;
  /** The link's credentials (default: a fresh PSK, so resume runs over TLS as in production). */
  security?: LinkSecurity;
  source?: Partial<SourceAgentOptions>;
  target?: Partial<TargetAgentOptions>;
  /** The source image exists already (default: one is generated with `seed`). */
  sourceImage?: string;
  log?: PairOptions['log'];
}

export async function startAgentPair(o: AgentPairOptions) {
  const src = o.sourceImage ?? join(o.dir, 'source.img');
  const dst = join(o.dir, 'target.img');
  const blockSize = o.blockSize ?? 65536;
  if (!o.sourceImage) {
    if (o.size === undefined) throw new Error('startAgentPair: give size (a generated image) or sourceImage');
    await generateImage(src, o.size, { seed: o.seed ?? 1, blockSize });
  }
  const pair = await startPair({
    sourceImage: src, targetImage: dst, dir: o.dir, algorithm: o.algorithm, blockSize, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs ?? 4,
    security: o.security, log: o.log ?? log.child({ test: 'agent-pair' }), source: { onPhase: o.onPhase, ...o.source }, target: o.target,
  });
  const imagesEqual = () => readFileSync(src).equals(readFileSync(dst));
  return { ...pair, src, dst, blockSize, imagesEqual };
}
