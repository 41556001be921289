import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FileDisk } from '../block/file.ts';
import { TrackingDisk } from '../block/filters/tracking.ts';
import { GateDisk } from '../block/filters/gate.ts';
import { NbdServer } from '../nbd/server.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { realClock } from '../util/clock.ts';
import { predictedStatus, type Prediction } from './prediction.ts';
import { Channel } from '../wire/channel.ts';
import { SocketTransport } from '../wire/socket-transport.ts';
import { connectLink, describeSecurity, type LinkSecurity } from '../wire/secure-link.ts';
import { readMessage, writeMessage } from '../wire/handshake.ts';
import { MsgType, WIRE_VERSION } from '../wire/messages.ts';
import { SourceEngine } from './source-engine.ts';
import { featureList, resolveFeatures, type Algorithm, type Features } from '../policy/algorithm.ts';
import type { CutoverConfig } from '../policy/cutover.ts';
import type { MigrationReport, Phase } from './report.ts';
import { AuthError, FlimcdError, IoError, UsageError, systemErrorCode } from '../errors.ts';

export interface SourceAgentOptions {
  image: string;
  /** Where the VM's NBD export listens. */
  nbd: Address;
  exportName?: string;
  /** The target agent's link address. */
  to: Address;
  /** Link credentials (TLS certificates, PSK) or an explicit `{ mode: 'insecure' }`. */
  security: LinkSecurity;
  algorithm: Algorithm;
  /** Optimizations on (default: the algorithm's). */
  features?: Features;
  blockSize: number;
  bandwidthBps?: number;
  cutover?: Partial<CutoverConfig>;
  manualCutover?: boolean;
  connectTimeoutMs?: number;
  log: Logger;
  onPhase?: (p: Phase) => void;
  /** A planner's prediction (`flimcd plan`): status shows it, and the ETA it gives. */
  prediction?: Prediction;
}

/**
 * The source agent: serves the running VM's disk over NBD (through dirty
 * tracking and the cut-over gate) and migrates it to the target agent.
 */
export class SourceAgent {
  private engine: SourceEngine | undefined;
  private channel: Channel | undefined;
  readonly features: Features;
  private constructor(
    private readonly o: SourceAgentOptions,
    readonly image: FileDisk,
    readonly tracking: TrackingDisk,
    readonly gate: GateDisk,
    readonly nbd: NbdServer,
    readonly nbdAddress: Address,
  ) {
    this.features = o.features ?? resolveFeatures(o.algorithm);
  }

  static async start(o: SourceAgentOptions): Promise<SourceAgent> {
    let image: FileDisk;
    try {
      image = await FileDisk.open(o.image, {});
    } catch (e) {
      if (systemErrorCode(e) === 'ENOENT') throw new UsageError(`--image: ${o.image} does not exist`);
      throw e;
    }
    const tracking = new TrackingDisk(image, o.blockSize);
    const gate = new GateDisk(tracking);
    const nbd = new NbdServer({ exports: [{ name: o.exportName ?? '', description: `flimcd source ${o.image}`, disk: gate }], log: o.log.child({ component: 'nbd' }) });
    const bound = await nbd.listen(o.nbd);
    o.log.info({ nbd: formatAddress(bound), image: o.image, size: image.size }, 'source agent serving the VM');
    return new SourceAgent(o, image, tracking, gate, nbd, bound);
  }

  /** Connects to the target and runs the migration to the end. */
  async migrate(): Promise<MigrationReport> {
    const { o } = this;
    const socket = await connectWithRetry(o.to, o.security, o.connectTimeoutMs ?? 30_000, o.log);
    const session = randomBytes(8).toString('hex');
    writeMessage(socket, {
      type: MsgType.HELLO,
      hello: { version: WIRE_VERSION, session, imageSize: this.image.size, blockSize: o.blockSize, algorithm: o.algorithm, features: featureList(this.features), processedSeq: 0 },
    });
    const { message, rest } = await readMessage(socket, 30_000);
    if (message.type === MsgType.ERROR) {
      socket.destroy();
      throw new FlimcdError(`target refused the migration: ${message.message}`, `FLIMCD_ERR_TARGET_${message.code}`);
    }
    if (message.type !== MsgType.WELCOME) throw new IoError(`target answered HELLO with message type ${message.type}`);
    let engine!: SourceEngine;
    const channel = new Channel({
      clock: realClock,
      onMessage: (m) => engine.handle(m),
      onDisconnect: (err) => {
        // Resume after link loss is a later issue; until then a lost link aborts and the VM stays here.
        if (engine) engine.abort(`link to the target lost${err ? `: ${err.message}` : ''}`);
      },
    });
    this.channel = channel;
    engine = new SourceEngine({
      image: this.image,
      tracking: this.tracking,
      gate: this.gate,
      channel,
      clock: realClock,
      algorithm: o.algorithm,
      features: this.features,
      blockSize: o.blockSize,
      bandwidthBps: o.bandwidthBps,
      cutover: o.cutover,
      manualCutover: o.manualCutover,
      log: o.log,
      onPhase: o.onPhase,
      targetHasReplicas: message.welcome.features.includes('offer'),
    });
    this.engine = engine;
    channel.attach(new SocketTransport(socket), message.welcome.processedSeq, rest);
    try {
      return await engine.run();
    } finally {
      channel.flushAck();
      channel.close();
    }
  }

  status(): Record<string, unknown> {
    const st: Record<string, unknown> = this.engine ? { role: 'source', ...this.engine.status() } : { role: 'source', phase: 'starting' };
    if (this.o.prediction) Object.assign(st, predictedStatus(this.o.prediction, (st.elapsedMs as number | undefined) ?? 0, st.phase as string));
    return st;
  }

  cutover(): void {
    if (!this.engine) throw new UsageError('the migration has not started yet');
    this.engine.requestCutover();
  }

  /**
   * Aborts the migration. Before cut-over the VM keeps its disk here anyway.
   * `reclaim` also takes the disk back after a cut-over (the gate opens again):
   * only safe while the VM has not run at the target (e.g. QEMU's RAM
   * migration failed after the storage hand-over, before the switch-over), so
   * this image is still the VM's current disk.
   */
  abort(reason: string, o: { reclaim?: boolean } = {}): void {
    this.engine?.abort(reason);
    if (o.reclaim && this.gate.status !== 'open') {
      this.gate.open();
      this.o.log.warn({ reason }, 'migration aborted: the VM\'s disk is served here again');
    }
  }

  async close(): Promise<void> {
    this.channel?.close();
    await this.nbd.close();
    await this.image.close();
  }
}

async function connectWithRetry(addr: Address, security: LinkSecurity, timeoutMs: number, log: Logger): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    try {
      const s = await connectLink(addr, security);
      log.info({ to: formatAddress(addr), link: describeSecurity(security) }, 'link to the target established');
      return s;
    } catch (e) {
      // Wrong credentials stay wrong: fail now, naming the reason.
      if (e instanceof AuthError) throw e;
      if (Date.now() + delay > deadline) {
        throw new IoError(`cannot reach the target agent at ${formatAddress(addr)} (${systemErrorCode(e) ?? (e as Error).message}) after ${attempt} attempts`);
      }
      if (attempt === 1) log.info({ to: formatAddress(addr) }, 'waiting for the target agent');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}
