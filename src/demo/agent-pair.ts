import { join } from 'node:path';
import type { Logger } from 'pino';
import { SourceAgent, type SourceAgentOptions } from '../migrate/source-agent.ts';
import { TargetAgent, type TargetAgentOptions } from '../migrate/target-agent.ts';
import { WanProxy } from '../wan-emulator/proxy.ts';
import { resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import { ephemeralPsk, type LinkSecurity } from '../wire/secure-link.ts';

export interface AgentPairOptions {
  /** The source image (it must exist) and where the target writes its copy. */
  sourceImage: string;
  targetImage: string;
  /** Where the NBD sockets go (source.sock, target.sock). */
  dir: string;
  algorithm: Algorithm;
  /** Overrides of the algorithm's feature defaults (ablation). */
  features?: Partial<Features>;
  blockSize: number;
  /** The emulated WAN between the agents. */
  bandwidthBps: number;
  rttMs: number;
  /** The link's credentials (default: a fresh PSK, so the link is TLS as in production). */
  security?: LinkSecurity;
  log: Logger;
  /** Further options of either agent. */
  source?: Partial<SourceAgentOptions>;
  target?: Partial<TargetAgentOptions>;
}

export interface AgentPair {
  source: SourceAgent;
  target: TargetAgent;
  /** The WAN emulator the link runs through (it can cut and stall the link). */
  wan: WanProxy;
  security: LinkSecurity;
  /** Closes the source, the WAN emulator and the target; never throws. */
  close(): Promise<void>;
}

/**
 * Real source and target agents in this process, over real sockets through
 * the WAN emulator: the one way the demo, the test rigs and the benchmarks
 * start a pair. The target listens first; the source serves its VM export
 * once started and migrates when asked (`source.migrate()`).
 */
export async function startAgentPair(o: AgentPairOptions): Promise<AgentPair> {
  const security = o.security ?? ephemeralPsk();
  const target = new TargetAgent({
    image: o.targetImage, security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(o.dir, 'target.sock') },
    log: o.log.child({ agent: 'target' }), ...o.target,
  });
  let wan: WanProxy | undefined;
  let source: SourceAgent | undefined;
  const close = async () => {
    await source?.close().catch(() => {});
    await wan?.close().catch(() => {});
    await target.close().catch(() => {});
  };
  try {
    const targetLink = await target.listen();
    wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: targetLink, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs });
    const wanAddr = await wan.listen();
    source = await SourceAgent.start({
      image: o.sourceImage, security, nbd: { kind: 'unix', path: join(o.dir, 'source.sock') }, to: wanAddr, algorithm: o.algorithm, blockSize: o.blockSize,
      bandwidthBps: o.bandwidthBps, log: o.log.child({ agent: 'source' }), features: resolveFeatures(o.algorithm, o.features), ...o.source,
    });
    return { source, target, wan, security, close };
  } catch (e) {
    await close();
    throw e;
  }
}
