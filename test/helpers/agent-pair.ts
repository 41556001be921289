/**
 * Real source and target agents in this process, over real sockets through
 * the WAN emulator (which can cut and stall the link), on a generated image.
 * For resume tests: the agents and the proxy are exposed, nothing is hidden.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { generateImage } from '../../src/workload/image-gen.ts';
import { SourceAgent, type SourceAgentOptions } from '../../src/migrate/source-agent.ts';
import { TargetAgent, type TargetAgentOptions } from '../../src/migrate/target-agent.ts';
import { WanProxy } from '../../src/link/proxy.ts';
import { resolveFeatures, type Algorithm } from '../../src/policy/algorithm.ts';
import { log } from '../../src/util/log.ts';
import { ephemeralPsk, type LinkSecurity } from '../../src/wire/secure-link.ts';
import type { Phase } from '../../src/migrate/report.ts';

export interface AgentPairOptions {
  dir: string;
  size: number;
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
}

export async function startAgentPair(o: AgentPairOptions) {
  const src = join(o.dir, 'source.img');
  const dst = join(o.dir, 'target.img');
  const blockSize = o.blockSize ?? 65536;
  await generateImage(src, o.size, { seed: o.seed ?? 1, blockSize });
  const quiet = log.child({ test: 'agent-pair' });
  const security = o.security ?? ephemeralPsk();
  const target = new TargetAgent({ image: dst, security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(o.dir, 'target.sock') }, log: quiet.child({ agent: 'target' }), ...o.target });
  const targetLink = await target.listen();
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: targetLink, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs ?? 4 });
  const wanAddr = await wan.listen();
  const source = await SourceAgent.start({
    image: src, security, nbd: { kind: 'unix', path: join(o.dir, 'source.sock') }, to: wanAddr, algorithm: o.algorithm, blockSize, bandwidthBps: o.bandwidthBps,
    log: quiet.child({ agent: 'source' }), features: resolveFeatures(o.algorithm), onPhase: o.onPhase, ...o.source,
  });
  const close = async () => {
    await source.close().catch(() => {});
    await wan.close().catch(() => {});
    await target.close().catch(() => {});
  };
  const imagesEqual = () => readFileSync(src).equals(readFileSync(dst));
  return { source, target, wan, src, dst, blockSize, security, close, imagesEqual };
}
