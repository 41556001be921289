import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Disk } from '../block/disk.ts';
import { openImage, type OpenedImage } from '../image/open-image.ts';
import { parseImageSpec, type ImageFormat } from '../image/image-spec.ts';
import { backingBlocks, baseRoot, FromBackingFilter } from '../image/from-backing.ts';
import { BaseRoots } from '../image/base-roots.ts';
import type { TrackingDisk } from '../block/filters/tracking.ts';
import type { GateDisk } from '../block/filters/gate.ts';
import { NbdServer } from '../nbd/server.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { Bitmap } from '../util/bitmap.ts';
import { REAL_RUNTIME, type Runtime } from '../runtime.ts';
import { UNNAMED_CONTENT_ID_FORMAT } from '../content/content-id.ts';
import { predictedStatus, type Prediction } from './prediction.ts';
import type { Channel } from '../wire/channel.ts';
import { SocketTransport } from '../wire/socket-transport.ts';
import { connectLink, describeSecurity, type LinkSecurity } from '../wire/secure-link.ts';
import { contentIdMismatch, readMessage, SilentCloseError, writeMessage } from '../wire/handshake.ts';
import { MsgType, WIRE_VERSION } from '../wire/messages.ts';
import type { SourceEngine, SourceMigrationOptions } from './source-engine.ts';
import { buildSourceDisks, buildSourceSession } from './stack.ts';
import { StateDir } from './state-dir.ts';
import type { Welcome } from '../wire/messages.ts';
import { featureList, resolveFeatures, type Features } from '../policy/algorithm.ts';
import { addWire, withEarlierSessions, type EarlierSessions, type MigrationReport, type WireBreakdown } from './report.ts';
import { ABORTING_PHASE, type CutoverRequest } from '../control/types.ts';
import { AuthError, ErrorCode, FlimcdError, IoError, systemErrorCode, targetRefusalCode, UsageError, WrongPeerError } from '../errors.ts';

export interface SourceAgentOptions extends SourceMigrationOptions {
  /** A raw file or block device, a qcow2 file (`format`), or an NBD URI. */
  image: string;
  /** How a file is opened (default raw; never probed). */
  format?: ImageFormat;
  /** qemu-storage-daemon's binary, for qcow2 (default on PATH). */
  storageDaemon?: string;
  /** Base images' roots, shared by the agents of a process so a base is hashed once (default: this agent's own). */
  baseRoots?: BaseRoots;
  /** Where the VM's NBD export listens. */
  nbd: Address;
  exportName?: string;
  /** The target agent's link address. */
  to: Address;
  /** Link credentials (TLS certificates, PSK) or an explicit `{ mode: 'insecure' }`. */
  security: LinkSecurity;
  connectTimeoutMs?: number;
  /** Durable migration state (default IMAGE.flimcd next to the image). */
  stateDir?: string;
  /** The link counts as lost after this long without a byte from the target (default 15 s). */
  silenceTimeoutMs?: number;
  /** After a link loss (and for the first connection, unless connectTimeoutMs), give up reconnecting after this long (default 10 minutes); restarting the agent resumes. */
  linkTimeoutMs?: number;
  /** A planner's prediction (`flimcd plan`): status shows it, and the ETA it gives. */
  prediction?: Prediction;
  /** Wraps the disk the VM reaches over NBD (above the cut-over gate), e.g. to record its requests (`--record-trace`). */
  vmDisk?: (gate: Disk) => Disk;
  /** What the migration runs on (content id format, block-work pool); default REAL_RUNTIME (SHA-256, this thread). */
  runtime?: Runtime;
}

/**
 * The source agent: serves the running VM's disk over NBD (through dirty
 * tracking and the cut-over gate) and migrates it to the target agent.
 */
/** What the source keeps durable: enough to rejoin its session and never let the VM write here after a cut-over began. */
interface SourceState {
  session: string;
  imageSize: number;
  blockSize: number;
  algorithm: string;
  /** 'cutover' once the VM's I/O was held for the hand-off (written before CUTOVER goes out). */
  phase: 'precopy' | 'cutover';
  /** When the migration first started (epoch ms), so a resumed session reports the whole migration's time. */
  startedAt?: number;
  /** When the VM's I/O was held for the cut-over (epoch ms), and how long until it was served at the target. */
  cutover?: { at: number; downtimeMs?: number };
  /** Sessions so far and their wire bytes, checkpointed every few seconds; `final` when a process wrote it on its way out. */
  spent?: { sessions: number; wire: WireBreakdown; exact: boolean; final: boolean };
  /**
   * Set when an operator's abort (not a signal, not a lost link) ended the migration with the VM's disk
   * here: the session is over for good, and a restarted agent starts a new migration instead of resuming it.
   */
  ended?: { reason: string; at: number };
}

/** How often a running session checkpoints its wire bytes into the state (lost on kill -9 since the last one). */
const CHECKPOINT_MS = 2000;

const STATE_FILE = 'source.json';

/** Ends a session attempt whose engine was replaced (the target restarted). */
class Superseded extends Error {}

/** An open link to the target: the socket, its WELCOME, and bytes that came after it. */
interface Link {
  socket: net.Socket;
  welcome: Welcome;
  rest: Buffer;
}

export class SourceAgent {
  private engine: SourceEngine | undefined;
  private channel: Channel | undefined;
  readonly features: Features;
  /** This process: lets the target tell a reconnect (channel intact) from a restart. */
  private readonly incarnation = randomBytes(8).toString('hex');
  private peerIncarnation: string | undefined;
  private reconnecting: Promise<void> | undefined;
  private nextLink: Link | undefined;
  private closed = false;
  private gaveUp: Error | undefined;
  /** Aborted by abort(): stops dialling and a handshake at once, whatever the phase. A retry() makes a new one. */
  private stopping = new AbortController();
  /**
   * Set when a migration ended (aborted, failed, rolled back) with the VM's disk still here: the agent
   * only serves the VM (no dialling, no session to resume) until retry() starts a new migration.
   */
  private ended: { session: string; reason: string; at: number } | undefined;
  /** Resolved by retry(): whoever runs this agent (the CLI) starts migrate() again. */
  private retryWaiters: (() => void)[] = [];
  /** A migrate() call is under way; settleWaiters resolve once it has returned or thrown (abort() answers then). */
  private migrating = false;
  private settleWaiters: (() => void)[] = [];
  /** abort() ended the running migration: status says `aborting` until migrate() has wound it down. */
  private aborting: { reason: string; resumable: boolean; at: number } | undefined;
  /** Link losses survived and sessions re-derived after a restart, for the report and tests. */
  readonly resumes = { reattached: 0, resynced: 0 };
  /** Sessions before the current one (this process's superseded ones and earlier processes'), for the final report. */
  private before: { sessions: number; wire: WireBreakdown; exact: boolean } = { sessions: 0, wire: { data: 0, reference: 0, zero: 0, control: 0 }, exact: true };
  /** State writes during sessions go one after another (a checkpoint must never overwrite a newer phase). */
  private persisting: Promise<void> = Promise.resolve();
  private stateRemoved = false;
  private constructor(
    private readonly o: SourceAgentOptions,
    readonly image: Disk,
    private readonly opened: OpenedImage,
    readonly tracking: TrackingDisk,
    readonly gate: GateDisk,
    readonly nbd: NbdServer,
    readonly nbdAddress: Address,
    private readonly state: StateDir,
    private saved: SourceState | undefined,
    /** A qcow2 overlay's blocks served by its backing chain, and that base's root: sent only to a target whose base differs. */
    private readonly backing: { blocks: Bitmap; root: string } | undefined,
  ) {
    this.features = o.features ?? resolveFeatures(o.algorithm);
    // State found: an earlier process ran sessions of this migration. Without a checkpoint (killed within
    // seconds) there was at least one, and its bytes are unknown.
    if (saved) this.before = saved.spent ? { sessions: Math.max(1, saved.spent.sessions), wire: saved.spent.wire, exact: saved.spent.exact && saved.spent.final } : { ...this.before, sessions: 1, exact: false };
  }

  /** Writes the state as it is now, after any write already under way. */
  private persist(): Promise<void> {
    this.persisting = this.persisting.then(async () => {
      if (this.stateRemoved || !this.saved) return;
      try {
        await this.state.writeJsonAsync(STATE_FILE, this.saved);
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message, state: this.state.path }, 'could not write the migration state');
        throw e;
      }
    });
    const p = this.persisting;
    this.persisting = p.catch(() => {});
    return p;
  }

  /** The wire bytes of every session so far, the current channel's included. */
  private spentNow(final: boolean): NonNullable<SourceState['spent']> {
    const current = this.channel ? this.channel.ledger.breakdown() : { data: 0, reference: 0, zero: 0, control: 0 };
    return { sessions: this.before.sessions + 1, wire: addWire(this.before.wire, current), exact: this.before.exact, final };
  }

  private async removeState(): Promise<void> {
    await this.persisting;
    this.stateRemoved = true;
    this.state.remove();
  }

  static async start(o: SourceAgentOptions): Promise<SourceAgent> {
    const spec = parseImageSpec(o.image, o.format);
    if (spec.kind === 'nbd' && !o.stateDir) throw new UsageError(`--state-dir: needed when --image is an NBD URI (${o.image}): there is no image file to keep the migration state next to`);
    const state = StateDir.forImage(spec.kind === 'file' ? spec.path : o.image, o.stateDir);
    const opened = await openImage({ spec, writable: true, socketDir: state.path, storageDaemon: o.storageDaemon, log: o.log, allocationDepth: true });
    let image = opened.disk;
    let backing: { blocks: Bitmap; root: string } | undefined;
    if (opened.allocationDepth && opened.backingFile) {
      // Before the VM's export listens: no write can slip between the depth map and the filter that keeps it current.
      try {
        const blocks = await backingBlocks(opened.allocationDepth, image.size, o.blockSize);
        const root = await baseRoot({ file: opened.backingFile.file, format: opened.backingFile.format, blockSize: o.blockSize, state, roots: o.baseRoots ?? new BaseRoots(), runtime: REAL_RUNTIME, log: o.log, storageDaemon: o.storageDaemon });
        backing = { blocks, root };
        image = new FromBackingFilter(image, blocks, o.blockSize);
        o.log.info({ fromBacking: blocks.count, base: opened.backingFile.file }, 'blocks the top layer does not allocate come from the backing chain');
      } catch (e) {
        await opened.close();
        throw e;
      }
    }
    let saved = state.readJson<SourceState>(STATE_FILE);
    if (saved?.ended) {
      // An operator aborted that migration: it is over, whatever a target still holds of it.
      o.log.warn({ session: saved.session, reason: saved.ended.reason, endedAt: new Date(saved.ended.at).toISOString(), state: state.path }, 'the migration in the state dir was aborted: not resuming it; starting a new migration');
      state.removeFile(STATE_FILE);
      saved = undefined;
    }
    if (saved && (saved.imageSize !== image.size || saved.blockSize !== o.blockSize)) {
      await opened.close();
      throw new UsageError(`${state.path} holds the state of a migration of a ${saved.imageSize}-byte image with ${saved.blockSize}-byte blocks, not this ${image.size}-byte image with ${o.blockSize}-byte blocks; remove it to start a new migration`);
    }
    // The target resumes what it received under the first algorithm's rules: another one is another migration.
    if (saved && saved.algorithm !== o.algorithm) {
      await opened.close();
      throw new UsageError(`${state.path} holds the state of a migration with --algorithm ${saved.algorithm}, not ${o.algorithm}; resume with --algorithm ${saved.algorithm}, or remove it to start a new migration`);
    }
    // Real bytes, the wall clock. A cut-over had begun: the VM may run at the target now. Hold its I/O here until the target says.
    const { tracking, gate } = buildSourceDisks({ runtime: o.runtime ?? REAL_RUNTIME, image, blockSize: o.blockSize, gate: saved?.phase === 'cutover' ? 'held' : 'open' });
    if (saved) o.log.info({ session: saved.session, phase: saved.phase, state: state.path }, 'found migration state: resuming the session');
    const nbd = new NbdServer({ exports: [{ name: o.exportName ?? '', description: `flimcd source ${o.image}`, disk: o.vmDisk ? o.vmDisk(gate) : gate }], log: o.log.child({ component: 'nbd' }) });
    const bound = await nbd.listen(o.nbd);
    o.log.info({ nbd: formatAddress(bound), image: o.image, size: image.size }, 'source agent serving the VM');
    return new SourceAgent(o, image, opened, tracking, gate, nbd, bound, state, saved, backing);
  }

  /**
   * Connects to the target and runs the migration to the end, across link
   * losses (reattach: the channels resend what the peer has not processed) and
   * restarts of either agent (a new engine re-derives what the target lacks).
   */
  async migrate(): Promise<MigrationReport> {
    this.ended = undefined;
    this.migrating = true;
    try {
      return await this.runMigration();
    } catch (e) {
      // The VM's disk is served here: this migration is over, and nothing of it goes on behind the VM's back.
      if (!this.closed && this.gate.status === 'open') {
        const ended = { session: this.saved?.session ?? '', reason: (e as Error).message, at: Date.now() };
        this.stopping.abort(new FlimcdError(`migration ended: ${ended.reason}`, ErrorCode.ABORTED));
        // An operator's abort ends it for good, on disk too: a restarted agent does not resume it.
        // A signal or a lost link leaves the state resumable, as the CLI says.
        // A failure before any session (dialling) wrote no state on the way out: the abort is recorded here.
        if (this.aborting && !this.aborting.resumable && !this.saved?.ended) await this.recordEnded(ended);
        this.ended = ended;
        // How long the abort took to wind down: the session stopping and the state written.
        const windDown = this.aborting ? { windDownMs: Date.now() - this.aborting.at } : {};
        this.o.log.warn({ session: ended.session, reason: ended.reason, ...windDown }, 'migration ended; the VM\'s disk is served here, and nothing is migrating (POST /retry starts a new migration)');
      }
      throw e;
    } finally {
      this.migrating = false;
      this.aborting = undefined;
      for (const w of this.settleWaiters.splice(0)) w();
    }
  }

  /** Marks the state: this migration was aborted (see SourceState.ended). */
  private async recordEnded(ended: { reason: string; at: number }): Promise<void> {
    if (!this.saved || this.stateRemoved) return;
    this.saved = { ...this.saved, ended: { reason: ended.reason, at: ended.at } };
    await this.persist().catch(() => {});
  }

  /**
   * Starts over after a migration ended with the VM's disk here (e.g. `flimcd vm migrate` rolled back):
   * the ended session's state is dropped, and the next migrate() runs a new session. The VM's export,
   * its dirty tracking and the control endpoint stay as they are: nothing that serves the VM restarts.
   */
  async retry(): Promise<void> {
    if (!this.ended) {
      const phase = String(this.status().phase);
      throw new FlimcdError(phase === 'done' ? 'the migration is done: the VM\'s disk has moved' : `a migration is running (phase ${phase}); abort it first`, ErrorCode.RETRY_REFUSED);
    }
    if (this.gate.status !== 'open') throw new FlimcdError('the VM\'s disk is not served here (a cut-over had begun); it cannot be migrated again from here', ErrorCode.RETRY_REFUSED);
    const ended = this.ended;
    await this.removeState();
    this.stateRemoved = false;
    this.saved = undefined;
    this.engine = undefined;
    this.channel = undefined;
    this.peerIncarnation = undefined;
    this.nextLink = undefined;
    this.gaveUp = undefined;
    this.stopping = new AbortController();
    this.before = { sessions: 0, wire: { data: 0, reference: 0, zero: 0, control: 0 }, exact: true };
    this.resumes.reattached = 0;
    this.resumes.resynced = 0;
    this.ended = undefined;
    this.o.log.info({ endedSession: ended.session }, 'new migration requested: starting a new session');
    for (const w of this.retryWaiters.splice(0)) w();
  }

  /** Resolves when retry() has prepared a new migration. */
  whenRetried(): Promise<void> {
    return new Promise((resolve) => this.retryWaiters.push(resolve));
  }

  private async runMigration(): Promise<MigrationReport> {
    const { o } = this;
    if (!this.saved) {
      this.saved = { session: randomBytes(8).toString('hex'), imageSize: this.image.size, blockSize: o.blockSize, algorithm: o.algorithm, phase: 'precopy', startedAt: Date.now() };
      this.state.writeJson(STATE_FILE, this.saved);
    }
    let link = await this.openLink(o.connectTimeoutMs ?? o.linkTimeoutMs ?? 600_000);
    if (link.welcome.resume === 'done') {
      link.socket.destroy();
      await this.removeState();
      throw new FlimcdError(`the target reports session ${this.saved.session} already completed (this agent restarted after the end); nothing left to do`, ErrorCode.ALREADY_DONE);
    }
    for (;;) {
      try {
        let report = await this.runSession(link);
        report.resumes = { ...this.resumes };
        if (this.before.sessions > 0) report = withEarlierSessions(report, this.earlierSessions());
        if (report.verified) await this.removeState();
        return report;
      } catch (e) {
        if (!(e instanceof Superseded) || !this.nextLink) {
          // On the way out: what this process moved, exactly, for the report of the session that resumes.
          if (this.saved && !this.stateRemoved) {
            // An operator's abort ends it for good, on disk too (one write: this one).
            const ended = this.aborting && !this.aborting.resumable && this.gate.status === 'open' && !this.closed ? { reason: (e as Error).message, at: Date.now() } : undefined;
            this.saved = { ...this.saved, spent: this.spentNow(true), ...(ended ? { ended } : {}) };
            await this.persist().catch(() => {});
          }
          throw e;
        }
        // The superseded session's bytes are exact: its channel is closed.
        const spent = this.spentNow(false);
        this.before = { sessions: spent.sessions, wire: spent.wire, exact: spent.exact };
        link = this.nextLink;
        this.nextLink = undefined;
      }
    }
  }

  /** What the sessions before the current one spent, as the report folds it in. */
  private earlierSessions(): EarlierSessions {
    const saved = this.saved!;
    const startedAt = saved.startedAt ?? this.sessionStartedAt;
    const cut = this.sessionResumedAfterCutover && saved.cutover ? { precopyMs: saved.cutover.at - startedAt, downtimeMs: saved.cutover.downtimeMs ?? 0 } : undefined;
    return { sessions: this.before.sessions, elapsedMs: Math.max(0, this.sessionStartedAt - startedAt), wire: this.before.wire, exact: this.before.exact, cutover: cut };
  }

  private sessionStartedAt = Date.now();
  private sessionResumedAfterCutover = false;

  /** One engine on one channel, from a WELCOME to the end (or until a restarted target makes it obsolete). */
  private async runSession(link: Link): Promise<MigrationReport> {
    const { o } = this;
    const saved = this.saved!;
    const { welcome } = link;
    const mode = welcome.resume ?? 'new';
    let resume: { mode: 'precopy' } | { mode: 'postcopy' } | undefined;
    if (mode === 'postcopy') {
      this.gate.shut('this disk has moved to the migration target');
      // What the target still lacks follows on the channel, in MISSING spans (bounded messages).
      resume = { mode: 'postcopy' };
    } else if (mode === 'new' && saved.phase === 'cutover') {
      link.socket.destroy();
      throw new FlimcdError(`the target does not know session ${saved.session} although a cut-over had begun: the VM may be running there, so its disk stays shut here; check the target, then remove ${this.state.path} to migrate again`, ErrorCode.RESUME);
    } else if (mode === 'precopy' || mode === 'new') {
      if (saved.phase === 'cutover') {
        // The target never took over: the VM's disk is here again.
        this.saved = { ...saved, phase: 'precopy', cutover: undefined };
        await this.persist();
        o.log.warn('the target had not taken over: the VM\'s disk is served here again');
      }
      if (this.gate.status !== 'open') this.gate.open();
      if (mode === 'precopy') resume = { mode: 'precopy' };
    } else {
      throw new IoError(`target answered a new session with resume mode ${mode}`);
    }
    if (resume) this.resumes.resynced++;
    this.peerIncarnation = welcome.incarnation;
    const features = resume?.mode === 'precopy' ? { ...this.features, dedup: true } : this.features;
    const { channel, engine } = buildSourceSession({
      runtime: o.runtime ?? REAL_RUNTIME,
      disks: { image: this.image, tracking: this.tracking, gate: this.gate },
      channel: {
        onDisconnect: (err, s) => this.linkLost(s.engine, s.channel, err),
        silenceTimeoutMs: o.silenceTimeoutMs,
      },
      engine: {
        algorithm: o.algorithm,
        features,
        blockSize: o.blockSize,
        bandwidthBps: o.bandwidthBps,
        cutover: o.cutover,
        manualCutover: o.manualCutover,
        log: o.log,
        onPhase: (p) => {
          // Downtime as the source saw it, kept for the report of a session that resumes after the cut-over.
          if (p === 'postcopy' && this.saved?.cutover && mode !== 'postcopy') {
            this.saved = { ...this.saved, cutover: { ...this.saved.cutover, downtimeMs: Date.now() - this.saved.cutover.at }, spent: this.spentNow(false) };
            void this.persist().catch(() => {});
          }
          o.onPhase?.(p);
        },
        targetHasReplicas: resume?.mode === 'precopy' || welcome.features.includes('offer'),
        resume,
        fromBacking: welcome.backing === 'same' ? this.backing?.blocks : undefined,
        beforeCutover: async () => {
          this.saved = { ...this.saved!, phase: 'cutover', cutover: { at: Date.now() } };
          await this.persist();
        },
      },
    });
    this.channel = channel;
    this.engine = engine;
    if (mode !== 'new') o.log.info({ mode, }, 'target restarted or this agent did: session continues from durable state');
    channel.attach(new SocketTransport(link.socket), welcome.processedSeq, link.rest);
    this.sessionStartedAt = Date.now();
    this.sessionResumedAfterCutover = mode === 'postcopy';
    // Bounded: one state write every CHECKPOINT_MS, never two at once.
    const checkpoint = setInterval(() => {
      if (this.saved && !this.stateRemoved) {
        this.saved = { ...this.saved, spent: this.spentNow(false) };
        void this.persist().catch(() => {});
      }
    }, CHECKPOINT_MS);
    checkpoint.unref();
    try {
      return await engine.run();
    } catch (e) {
      if (this.nextLink) throw new Superseded();
      throw this.gaveUp ?? e;
    } finally {
      clearInterval(checkpoint);
      channel.flushAck();
      channel.close();
    }
  }

  /** The link failed: reconnect in the background; the engine keeps its state and waits. */
  private linkLost(engine: SourceEngine, channel: Channel, err?: Error): void {
    // After an abort the link is let go on purpose: there is nothing to reconnect for.
    if (this.closed || this.stopping.signal.aborted || this.reconnecting || this.channel !== channel) return;
    if (engine.status().phase === 'done') return;
    this.o.log.warn({ err: err?.message }, 'link to the target lost; reconnecting');
    this.reconnecting = (async () => {
      try {
        const link = await this.openLink(this.o.linkTimeoutMs ?? 600_000);
        if (this.channel !== channel) {
          link.socket.destroy();
          return;
        }
        if (link.welcome.resume === 'attach' || link.welcome.resume === 'done') {
          this.resumes.reattached++;
          this.o.log.info({ processedByTarget: link.welcome.processedSeq }, 'link to the target restored; resending what it has not processed');
          channel.attach(new SocketTransport(link.socket), link.welcome.processedSeq, link.rest);
        } else {
          // The target restarted: what was in flight is gone. A new engine takes over from durable state.
          this.nextLink = link;
          engine.abort('the target restarted; continuing the session from durable state', { keepGate: true, quiet: true });
          channel.close();
        }
      } catch (e) {
        const cut = engine.status().phase;
        // Once a cut-over has begun the VM may already run at the target: never reopen the disk here.
        this.gaveUp = e instanceof FlimcdError ? e : new FlimcdError((e as Error).message, ErrorCode.LINK_LOST);
        this.o.log.error({ err: (e as Error).message, state: this.state.path }, 'giving up on the link to the target; restart the agent with the same arguments to resume');
        engine.abort((e as Error).message, { keepGate: cut !== 'precopy' && cut !== 'starting', code: ErrorCode.LINK_LOST });
        channel.close();
      } finally {
        this.reconnecting = undefined;
      }
    })();
  }

  /** Opens a link to the target and introduces this agent (the TLS layer wraps dialTarget). */
  private async openLink(timeoutMs: number): Promise<Link> {
    const { o } = this;
    const saved = this.saved!;
    const deadline = Date.now() + timeoutMs;
    let silentCloses = 0;
    for (let attempt = 1; ; attempt++) {
      const socket = await dialWithBackoff(o.to, o.security, deadline, o.log, attempt === 1, this.stopping.signal);
      writeMessage(socket, {
        type: MsgType.HELLO,
        hello: {
          version: WIRE_VERSION, session: saved.session, imageSize: this.image.size, blockSize: o.blockSize, algorithm: o.algorithm, features: featureList(this.features), backingRoot: this.backing?.root,
          processedSeq: this.channel?.processedSeq ?? 0, incarnation: this.incarnation, peerIncarnation: this.channel ? this.peerIncarnation : undefined,
          contentIds: (o.runtime ?? REAL_RUNTIME).content.format,
        },
      });
      let reply;
      const hangUp = () => socket.destroy();
      this.stopping.signal.addEventListener('abort', hangUp, { once: true });
      try {
        reply = await readMessage(socket, 30_000);
      } catch (e) {
        socket.destroy();
        this.stopping.signal.throwIfAborted();
        // Something else listens there (an NBD or HTTP server): asking again cannot make it a flimcd agent.
        if (e instanceof WrongPeerError) throw new WrongPeerError(`${formatAddress(o.to)} is ${e.message}; check --to`, e.speaks);
        if (Date.now() > deadline) throw new IoError(`the target agent at ${formatAddress(o.to)} did not answer: ${(e as Error).message}`, { cause: e });
        // A plaintext HELLO to a TLS target is dropped without a word. Before any link of this process
        // came up, repeated silent closes mean that, not a flaky network: say so instead of retrying for minutes.
        silentCloses = e instanceof SilentCloseError ? silentCloses + 1 : 0;
        if (o.security.mode === 'insecure' && !this.channel && silentCloses >= 3) {
          throw new AuthError(`the target agent at ${formatAddress(o.to)} closed the link ${silentCloses} times without answering HELLO: it probably requires TLS (this source runs --insecure); pass the same --psk-file or --tls-* credentials as the target`);
        }
        o.log.warn({ err: (e as Error).message }, 'handshake with the target failed; retrying');
        await sleep(500, this.stopping.signal);
        continue;
      } finally {
        this.stopping.signal.removeEventListener('abort', hangUp);
      }
      const { message, rest } = reply;
      if (message.type === MsgType.ERROR) {
        socket.destroy();
        throw new FlimcdError(`target refused the migration: ${message.message}`, targetRefusalCode(message.code));
      }
      if (message.type !== MsgType.WELCOME) {
        socket.destroy();
        throw new IoError(`target answered HELLO with message type ${message.type}`);
      }
      // An older target ignores the format in HELLO: the source refuses it here.
      const mismatch = contentIdMismatch((o.runtime ?? REAL_RUNTIME).content.format, message.welcome.contentIds, UNNAMED_CONTENT_ID_FORMAT, 'target');
      if (mismatch) {
        socket.destroy();
        throw new FlimcdError(`cannot migrate to ${formatAddress(o.to)}: ${mismatch}`, ErrorCode.TARGET_CONTENT_ID);
      }
      return { socket, welcome: message.welcome, rest };
    }
  }

  /** Where the durable migration state lives (kept after a failure or an interruption, for a resume). */
  get statePath(): string {
    return this.state.path;
  }

  /** The last migration was aborted by an operator and the state says so: a restart starts a new one. */
  get abortRecorded(): boolean {
    return this.saved?.ended !== undefined && !this.stateRemoved;
  }

  status(): Record<string, unknown> {
    if (this.aborting && this.migrating && !this.ended) {
      // Aborted, still winding down (the engine stopping, the state written): idle next.
      return { role: 'source', phase: ABORTING_PHASE, migrating: true, progress: null, etaSeconds: null, remainingBlocks: null, abort: { reason: this.aborting.reason }, vmConnections: this.nbd.connectionCount };
    }
    if (this.ended) {
      // Nothing migrates: no progress, no ETA; what ended and why.
      return { role: 'source', phase: 'idle', migrating: false, progress: null, etaSeconds: null, remainingBlocks: null, lastMigration: { session: this.ended.session, outcome: 'ended', reason: this.ended.reason, atMs: this.ended.at }, vmConnections: this.nbd.connectionCount };
    }
    const st: Record<string, unknown> = this.engine ? { role: 'source', ...this.engine.status() } : { role: 'source', phase: 'starting' };
    // Who still uses the VM's disk here: after a stop before the cut-over the agent serves it until this is 0.
    st.vmConnections = this.nbd.connectionCount;
    if (this.o.prediction) Object.assign(st, predictedStatus(this.o.prediction, (st.elapsedMs as number | undefined) ?? 0, st.phase as string));
    return st;
  }

  cutover(opts?: CutoverRequest): void {
    if (!this.engine) throw new UsageError('the migration has not started yet');
    this.engine.requestCutover(opts);
  }

  /**
   * Aborts the migration. Before cut-over the VM keeps its disk here anyway.
   * `reclaim` also takes the disk back after a cut-over (the gate opens again):
   * only safe while the VM has not run at the target (e.g. QEMU's RAM
   * migration failed after the storage hand-over, before the switch-over), so
   * this image is still the VM's current disk. `resumable` (a signal: the
   * operator stops the process, not the migration) keeps the state for a
   * restart to resume; otherwise the state records the abort and a restart
   * starts a new migration. Resolves once the migration has wound down
   * (status `idle`); until then status says `aborting`.
   */
  abort(reason: string, o: { reclaim?: boolean; resumable?: boolean } = {}): Promise<void> {
    // Also ends a dial or handshake under way (before the first session, or while reconnecting).
    if (!this.stopping.signal.aborted) this.stopping.abort(new FlimcdError(`migration aborted: ${reason}`, ErrorCode.ABORTED));
    if (this.migrating) this.aborting ??= { reason, resumable: o.resumable ?? false, at: Date.now() };
    this.engine?.abort(reason);
    if (o.reclaim && this.gate.status !== 'open') {
      this.gate.open();
      this.o.log.warn({ reason }, 'migration aborted: the VM\'s disk is served here again');
    }
    if (!this.migrating) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channel?.close();
    await this.nbd.close();
    await this.opened.close();
  }
}

/** Opens a link to the target agent (the one place a link is dialed): TLS or plaintext as `security` says. */
export function dialTarget(addr: Address, security: LinkSecurity): Promise<net.Socket> {
  return connectLink(addr, security);
}

/**
 * Dials until it connects, with capped exponential backoff and jitter, until
 * `deadline`. Wrong credentials are not retried. `signal` ends it at once,
 * rejecting with the signal's reason.
 */
async function dialWithBackoff(addr: Address, security: LinkSecurity, deadline: number, log: Logger, first: boolean, signal: AbortSignal): Promise<net.Socket> {
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      const s = await untilAborted(dialTarget(addr, security), signal, (late) => late.destroy());
      log.info({ to: formatAddress(addr), link: describeSecurity(security) }, 'link to the target established');
      return s;
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      // Wrong credentials stay wrong, and so does a peer that is not a flimcd agent: fail now, naming the reason.
      if (e instanceof AuthError || e instanceof WrongPeerError) throw e;
      const why = systemErrorCode(e) ?? (e as Error).message;
      if (Date.now() + delay > deadline) {
        throw new FlimcdError(`cannot reach the target agent at ${formatAddress(addr)} (${why}) after ${attempt} attempts`, ErrorCode.LINK_LOST);
      }
      if (!first || attempt > 1) log.info({ to: formatAddress(addr), attempt, retryInMs: Math.round(delay), err: why }, 'target agent unreachable; retrying');
      else log.info({ to: formatAddress(addr) }, 'waiting for the target agent');
      // Jitter (±25 %) keeps many agents from reconnecting in lockstep.
      await sleep(delay * (0.75 + Math.random() * 0.5), signal);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** Waits `ms`; rejects with the signal's reason as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const slept = untilAborted(new Promise<void>((r) => (timer = setTimeout(r, ms))), signal);
  // An abandoned timer would hold the process up to the next attempt after an abort.
  return slept.finally(() => clearTimeout(timer));
}

/**
 * `p`, or a rejection with the signal's reason as soon as `signal` aborts.
 * `discard` receives a value that arrives after the abort (e.g. a socket to close).
 */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal, discard?: (late: T) => void): Promise<T> {
  if (signal.aborted) {
    void p.then((v) => discard?.(v), () => {});
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      void p.then((v) => discard?.(v), () => {});
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) discard?.(v);
        else resolve(v);
      },
      (e: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
