import net from 'node:net';
import { resolve } from 'node:path';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { FileDisk } from '../block/file.ts';
import type { Disk } from '../block/disk.ts';
import { openImage, type OpenedImage } from '../image/open-image.ts';
import { parseImageSpec, type ImageFormat } from '../image/image-spec.ts';
import { baseRoot } from '../image/from-backing.ts';
import { BaseRoots } from '../image/base-roots.ts';
import type { GateDisk } from '../block/filters/gate.ts';
import type { PostcopyDisk } from '../block/filters/postcopy.ts';
import { NbdServer } from '../nbd/server.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { removeStaleSocket } from '../util/unix-socket.ts';
import { REAL_RUNTIME, type Runtime } from '../runtime.ts';
import { UNNAMED_CONTENT_ID_FORMAT } from '../content/content-id.ts';
import type { Channel } from '../wire/channel.ts';
import { SocketTransport } from '../wire/socket-transport.ts';
import { createLinkServer, type LinkSecurity } from '../wire/secure-link.ts';
import { contentIdMismatch, readMessage, writeMessage } from '../wire/handshake.ts';
import { MsgType, WIRE_VERSION, type Hello } from '../wire/messages.ts';
import type { TargetEngine, TargetResult } from './target-engine.ts';
import { buildTargetDisks, buildTargetSession } from './stack.ts';
import { LocalContent } from './local-content.ts';
import { ReplicaIndex } from '../replica-index/replica-index.ts';
import { indexBlockSizeProblem } from '../replica-index/block-size-check.ts';
import { indexContentIdProblem } from '../replica-index/content-id-check.ts';
import type { Phase } from './report.ts';
import { featureList, featuresFromList } from '../policy/algorithm.ts';
import type { PrefetchConfig } from '../policy/prefetch.ts';
import { ProtocolError, UsageError, type TargetRefusalReason } from '../errors.ts';
import { randomBytes } from 'node:crypto';
import { Bitmap } from '../util/bitmap.ts';
import { PresenceLog, StateDir } from './state-dir.ts';
import { MemoryDisk } from '../block/memory.ts';
import { servePlanProbe } from './plan-probe.ts';
import type { RemoteContent } from './remote-content.ts';

export interface TargetAgentOptions {
  /** A raw file or block device, a qcow2 file (`format`), or an NBD URI. */
  image: string;
  /** How a file is opened or created (default raw; never probed). */
  format?: ImageFormat;
  /** A missing image is created as a qcow2 overlay on this base (this host's copy of the source's backing chain). */
  backing?: { file: string; format: ImageFormat };
  /** qemu-storage-daemon's binary, for qcow2 (default on PATH). */
  storageDaemon?: string;
  /** Base images' roots, shared by the agents of a process so a base is hashed once (default: this agent's own). */
  baseRoots?: BaseRoots;
  /** Where the source agent connects. */
  listen: Address;
  /** Link credentials (TLS certificates, PSK) or an explicit `{ mode: 'insecure' }`. */
  security: LinkSecurity;
  /** Where the VM's NBD export listens once the image size is known. */
  nbd: Address;
  exportName?: string;
  /** Replica index (content id → local location) to build blocks from and to record received blocks in. */
  indexDir?: string;
  /**
   * Sibling hosts' content (datacenter-wide locator + LAN fetch), looked up
   * after this host's image and index and before the WAN; blocks recorded in
   * the index are published to it. Shared by every agent of a process.
   */
  remote?: RemoteContent;
  /** Take part in prefetch when the source asks for it (default true; false for ablation). */
  prefetch?: boolean;
  prefetchConfig?: Partial<PrefetchConfig>;
  /** Durable migration state (default IMAGE.flimcd next to the image). */
  stateDir?: string;
  /** The link counts as lost after this long without a byte from the source (default 15 s). */
  silenceTimeoutMs?: number;
  /** Post-copy: a VM request waits this long for missing blocks (the link may be down) before it fails with EIO. Default 60 s. */
  fetchTimeoutMs?: number;
  log: Logger;
  onPhase?: (p: Phase) => void;
  /** Called once the VM export is listening (after the source's HELLO, or at start when resuming post-copy). */
  onNbdListening?: (addr: Address) => void;
  /** What the migration runs on (content id format, block-work pool); default REAL_RUNTIME (SHA-256, this thread). */
  runtime?: Runtime;
}

/** What the target keeps durable. In post-copy also `missing.bin` (cut-over snapshot) and `presence.log` (changes since). */
interface TargetState {
  session: string;
  imageSize: number;
  blockSize: number;
  phase: 'precopy' | 'postcopy' | 'done';
}

const STATE_FILE = 'target.json';
/** Plan probes answered at once (each reads and hashes blocks). */
const MAX_PLAN_PROBES = 2;
const MISSING_FILE = 'missing.bin';
const LOG_FILE = 'presence.log';

/**
 * The target agent: accepts one migration from a source agent, writes the
 * image, and from cut-over on serves the VM over NBD with post-copy semantics.
 * After the migration it keeps serving the VM (the VM runs on this disk now)
 * until closed. Survives link losses (the source reconnects and the channel is
 * reattached) and restarts of either agent (its durable state says where the
 * session stands; a new engine continues from there).
 */
/**
 * Pre-copy (and hand-off) progress as the target sees it: the source's first pass over the image, as blocks
 * whose content arrived. The target cannot know the dirty rounds' size, so once the first pass is
 * done the ETA is unknown (the source decides the cut-over) rather than a false 0 s.
 */
export function precopyProgress(phase: string, blocks: number, arrived: number): Record<string, unknown> {
  if ((phase !== 'precopy' && phase !== 'cutover') || blocks <= 0) return {};
  const remaining = Math.max(0, blocks - arrived);
  // During the hand-off (a moment) the missing set is not applied yet: progress as pre-copy left it, ETA unknown.
  return { remainingBlocks: remaining, progress: Math.min(1, arrived / blocks), ...(remaining === 0 || phase === 'cutover' ? { etaSeconds: null } : {}) };
}

export class TargetAgent {
  private readonly server: net.Server;
  private engine: TargetEngine | undefined;
  private channel: Channel | undefined;
  private disk: Disk | undefined;
  private opened: OpenedImage | undefined;
  private postcopy: PostcopyDisk | undefined;
  private gate: GateDisk | undefined;
  private local: LocalContent | undefined;
  private index: ReplicaIndex | undefined;
  private nbd: NbdServer | undefined;
  private presence: PresenceLog | undefined;
  private readonly state: StateDir;
  private readonly baseRoots: BaseRoots;
  private saved: TargetState | undefined;
  /** This process: lets the source tell a reconnect (channel intact) from a restart. */
  private readonly incarnation = randomBytes(8).toString('hex');
  private sourceIncarnation: string | undefined;
  private hello: Hello | undefined;
  /** Connections are handled one at a time (a reconnect may race the old link's close). */
  private accepting: Promise<void> = Promise.resolve();
  private resultPromise: Promise<TargetResult>;
  private resolveResult!: (r: TargetResult) => void;
  private rejectResult!: (e: Error) => void;
  private finished: TargetResult | undefined;
  readonly resumes = { reattached: 0, resynced: 0 };
  listenAddress: Address | undefined;
  nbdAddress: Address | undefined;

  /** What the migration runs on: the options' runtime, or real bytes on this thread. */
  private get runtime(): Runtime {
    return this.o.runtime ?? REAL_RUNTIME;
  }

  constructor(private readonly o: TargetAgentOptions) {
    // Links are taken one at a time: a reconnect must not race the link it replaces.
    this.server = createLinkServer(o.security, (s) => {
      this.accepting = this.accepting.then(() => this.accept(s)).catch((e) => o.log.error({ err: (e as Error).message }, 'link connection failed'));
    }, o.log);
    this.state = StateDir.forImage(o.image, o.stateDir);
    this.baseRoots = o.baseRoots ?? new BaseRoots();
    this.resultPromise = new Promise((res, rej) => {
      this.resolveResult = res;
      this.rejectResult = rej;
    });
    this.resultPromise.catch(() => {});
  }

  async listen(): Promise<Address> {
    const a = this.o.listen;
    this.saved = this.state.readJson<TargetState>(STATE_FILE);
    // A restart in post-copy: the VM's disk is served again at once from durable state.
    if (this.saved?.phase === 'postcopy') await this.restorePostcopy(this.saved);
    // A restart after the end: every block is here; the VM's disk is simply served.
    if (this.saved?.phase === 'done') {
      await this.openImage(this.saved.imageSize, this.saved.blockSize, true);
      this.gate!.open();
    }
    if (a.kind === 'unix') await removeStaleSocket(a.path, '--listen');
    // The VM's export listens only once a source connects: refuse a path another process serves now, not then.
    if (this.o.nbd.kind === 'unix' && !this.nbd) await removeStaleSocket(this.o.nbd.path, '--nbd');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new UsageError(`--listen: ${formatAddress(a)} is already in use`) : e));
      if (a.kind === 'unix') this.server.listen(a.path, resolve);
      else this.server.listen(a.port, a.host, resolve);
    });
    const ad = this.server.address();
    this.listenAddress = a.kind === 'unix' ? a : { kind: 'tcp', host: a.host, port: (ad as net.AddressInfo).port };
    this.o.log.info({ listen: formatAddress(this.listenAddress), resuming: this.saved?.session }, 'target agent waiting for the source');
    if (this.o.indexDir) this.reportIndex();
    return this.listenAddress;
  }

  /** At start: what the replica index holds, by block size (a migration can use only its own size's entries). */
  private reportIndex(): void {
    this.index ??= ReplicaIndex.open(this.o.indexDir!);
    const bySize = new Map<number, number>();
    for (const im of this.index.list()) bySize.set(im.blockSize, (bySize.get(im.blockSize) ?? 0) + 1);
    const sizes = [...bySize].sort((a, b) => a[0] - b[0]).map(([bs, n]) => `${n} image${n > 1 ? 's' : ''} in ${bs / 1024} KiB blocks`);
    this.o.log.info({ index: this.o.indexDir, blockSizes: [...bySize.keys()] }, `replica index: ${sizes.join(', ') || 'empty'}; a migration uses only the entries of its own block size`);
    if (this.saved) this.warnIndexBlockSize(this.saved.blockSize);
    const formats = indexContentIdProblem(this.index.list(), this.runtime.content.format, this.o.indexDir!);
    if (formats) this.o.log.warn({ index: this.o.indexDir }, formats);
  }

  /** The index finds nothing for a migration at another block size: say so, with the fix. */
  private warnIndexBlockSize(blockSize: number): void {
    const problem = indexBlockSizeProblem(this.index!.list(), blockSize, this.o.indexDir!);
    if (problem) this.o.log.warn({ index: this.o.indexDir }, problem);
  }

  /** Resolves when a migration has completed (verified or not). */
  result(): Promise<TargetResult> {
    return this.resultPromise;
  }

  status(): Record<string, unknown> {
    // Where the VM's export listens and who uses it: `flimcd vm migrate` checks the target QEMU is attached here.
    const vm = { nbd: this.nbdAddress ? formatAddress(this.nbdAddress) : null, vmConnections: this.nbd?.connectionCount ?? 0 };
    if (!this.engine) return { role: 'target', phase: this.postcopy?.isActive ? 'postcopy' : 'waiting', ...(this.postcopy?.isActive ? {} : { progress: 0, etaSeconds: null }), ...vm };
    const r = this.finished;
    const st = this.engine.status();
    return { role: 'target', ...st, ...precopyProgress(st.phase, st.blocks, this.engine.arrivedBlocks), ...(r ? { verified: r.verified, merkleRoot: r.root } : {}), ...vm };
  }

  abort(reason: string): void {
    this.engine?.abort(reason);
  }

  /** The VM-facing post-copy disk (presence map), once the image is open. */
  get postcopyDisk(): PostcopyDisk | undefined {
    return this.postcopy;
  }

  private async accept(socket: net.Socket): Promise<void> {
    socket.on('error', () => {});
    socket.setNoDelay(true);
    let hello: Hello;
    let rest: Buffer;
    try {
      const r = await readMessage(socket, 30_000);
      if (r.message.type !== MsgType.HELLO) throw new ProtocolError(`expected HELLO, got message type ${r.message.type}`);
      hello = r.message.hello;
      rest = r.rest;
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'refused a link connection');
      socket.destroy();
      return;
    }
    const refuse = (code: TargetRefusalReason, message: string) => {
      this.o.log.warn({ code, message }, 'refusing migration');
      writeMessage(socket, { type: MsgType.ERROR, code, message });
      socket.end();
    };
    if (Math.floor(hello.version) !== WIRE_VERSION) return refuse('VERSION', `wire version ${hello.version} is not supported (this agent speaks ${WIRE_VERSION})`);
    const mismatch = contentIdMismatch(this.runtime.content.format, hello.contentIds, UNNAMED_CONTENT_ID_FORMAT, 'source');
    if (mismatch) return refuse('CONTENT_ID', mismatch);
    if (hello.imageSize % 512 !== 0) return refuse('GEOMETRY', `image size ${hello.imageSize} is not a multiple of 512`);
    if (hello.purpose === 'plan') {
      // Not a migration: answered on its own, so a migration's connection is not held up behind it.
      this.answerPlanProbe(socket, hello, rest, refuse).catch((e) => this.o.log.warn({ err: (e as Error).message }, 'plan probe failed'));
      return;
    }
    const saved = this.saved;
    if (saved && saved.session !== hello.session) {
      if (saved.phase === 'done' || this.hello) {
        // Finished or running: this image is the VM's disk now; another migration must not write into it.
        return refuse('BUSY', 'this target agent is already receiving a migration');
      } else {
        return refuse('STALE_STATE', `${this.state.path} holds unfinished migration session ${saved.session}, not ${hello.session}; resume that one, or remove the directory to start over`);
      }
    }
    if (this.saved && (this.saved.imageSize !== hello.imageSize || this.saved.blockSize !== hello.blockSize)) {
      return refuse('GEOMETRY', `${this.state.path} holds a migration of a ${this.saved.imageSize}-byte image with ${this.saved.blockSize}-byte blocks; the source now says ${hello.imageSize} bytes, ${hello.blockSize}-byte blocks; refusing to mix them`);
    }
    if (this.saved?.phase === 'done' || this.finished) {
      // Everything is applied and the source's DONE was processed: tell it so.
      this.o.log.info({ session: hello.session }, 'the source reconnected after the migration completed');
      writeMessage(socket, { type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: hello.session, features: [], processedSeq: Number.MAX_SAFE_INTEGER, incarnation: this.incarnation, resume: 'done', contentIds: this.runtime.content.format } });
      socket.end();
      return;
    }
    try {
      if (this.channel && this.engine && hello.peerIncarnation === this.incarnation && hello.incarnation === this.sourceIncarnation) {
        this.reattach(socket, hello, rest);
      } else {
        await this.begin(socket, hello, rest);
      }
    } catch (e) {
      refuse('SETUP', (e as Error).message);
    }
  }

  private planProbes = 0;

  /**
   * `flimcd plan --target`: which of the source image's blocks could this target build from what it
   * holds before a migration (its own image file at the same size, the replica index)? Read-only.
   */
  private async answerPlanProbe(socket: net.Socket, hello: Hello, rest: Buffer, refuse: (code: TargetRefusalReason, message: string) => void): Promise<void> {
    const { o } = this;
    if (this.saved || this.hello || this.disk) {
      return refuse('BUSY', 'this target agent has a migration under way (or done): plan before starting one');
    }
    if (this.planProbes >= MAX_PLAN_PROBES) return refuse('BUSY', `this target agent is answering ${this.planProbes} plan probes already`);
    this.planProbes++;
    let image: FileDisk | undefined;
    let local: LocalContent | undefined;
    try {
      const preexisting = existsSync(o.image) && lstatSync(o.image).isFile() && lstatSync(o.image).size === hello.imageSize;
      if (preexisting) image = await FileDisk.open(o.image, { readOnly: true });
      if (o.indexDir) this.index ??= ReplicaIndex.open(o.indexDir);
      if (this.index) this.warnIndexBlockSize(hello.blockSize);
      if (preexisting || (this.index?.blockCount(hello.blockSize) ?? 0) > 0) {
        local = new LocalContent({ image: image ?? new MemoryDisk(hello.imageSize, { readOnly: true }), imagePath: resolve(o.image), blockSize: hello.blockSize, content: this.runtime.content, preexisting, index: this.index, log: o.log });
      }
      const r = await servePlanProbe({ socket, session: hello.session, rest, local, blockSize: hello.blockSize, incarnation: this.incarnation, log: o.log, contentIds: this.runtime.content.format });
      o.log.info({ session: hello.session, ...r, image: preexisting, index: this.index !== undefined }, 'answered a plan probe');
    } finally {
      this.planProbes--;
      await local?.close();
      await image?.close();
    }
  }

  /** Both sides kept their channels: only the link changed. */
  private reattach(socket: net.Socket, hello: Hello, rest: Buffer): void {
    const channel = this.channel!;
    this.resumes.reattached++;
    this.o.log.info({ session: hello.session, processedBySource: hello.processedSeq }, 'source reconnected; resending what it has not processed');
    writeMessage(socket, { type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: hello.session, features: this.welcomeFeatures(), processedSeq: channel.processedSeq, incarnation: this.incarnation, resume: 'attach', contentIds: this.runtime.content.format } });
    channel.attach(new SocketTransport(socket), hello.processedSeq, rest);
  }

  private welcomeFeatures(): string[] {
    return this.lastFeatures;
  }

  private lastFeatures: string[] = [];

  /** Opens the image and the VM's export (once per process). */
  private async openImage(size: number, blockSize: number, preexistingHint: boolean): Promise<boolean> {
    const { o } = this;
    if (this.disk) return true;
    const spec = parseImageSpec(o.image, o.backing ? 'qcow2' : o.format);
    const rawFile = spec.kind === 'file' && spec.format === 'raw' && existsSync(o.image) && lstatSync(o.image).isFile();
    if (rawFile) {
      const have = lstatSync(o.image).size;
      if (have !== 0 && have !== size) {
        throw new UsageError(`${o.image} exists with ${have} bytes but the source image has ${size}; refusing to overwrite a different disk`);
      }
    }
    let preexisting = preexistingHint || (rawFile && lstatSync(o.image).size === size);
    const opened = await openImage({ spec, writable: true, createSize: spec.kind === 'file' ? size : undefined, backing: o.backing, socketDir: this.state.path, storageDaemon: o.storageDaemon, log: o.log });
    if (opened.disk.size !== size) {
      await opened.close();
      throw new UsageError(`${opened.label} holds ${opened.disk.size} bytes but the source image has ${size}; refusing to write a different disk`);
    }
    // A new overlay reads its base: worth comparing with, block by block (the base may differ from the source's).
    // An existing qcow2 or NBD export holds whatever it holds: compared by content too.
    if (!rawFile && !(opened.created && !o.backing)) preexisting = true;
    const disk = opened.disk;
    this.opened = opened;
    this.disk = disk;
    // Real bytes, the wall clock; post-copy reads go to the current session's engine.
    const { postcopy, gate } = buildTargetDisks({
      runtime: this.runtime, image: disk, blockSize, engine: () => this.engine,
      postcopy: {
        fetchTimeoutMs: o.fetchTimeoutMs ?? 60_000,
        onFetchTimeout: (blocks, ms) => o.log.error({ blocks: blocks.slice(0, 16), waitedMs: ms, linkUp: this.channel?.connected ?? false }, 'post-copy read gave up waiting for the source: failing it with EIO'),
        persist: (kind, blocks) => (this.presence ? this.presence.append(kind, blocks) : Promise.resolve()),
      },
    });
    this.postcopy = postcopy;
    this.gate = gate;
    const nbd = new NbdServer({ exports: [{ name: o.exportName ?? '', description: `flimcd target ${o.image}`, disk: this.gate }], log: o.log.child({ component: 'nbd' }) });
    this.nbdAddress = await nbd.listen(o.nbd);
    this.nbd = nbd;
    o.onNbdListening?.(this.nbdAddress);
    return preexisting;
  }

  /** Restart in post-copy: presence map = cut-over snapshot + log; the VM is served at once. */
  private async restorePostcopy(saved: TargetState): Promise<void> {
    const n = Math.ceil(saved.imageSize / saved.blockSize);
    const snap = this.state.readBytes(MISSING_FILE);
    if (!snap) throw new UsageError(`${this.state.path} says post-copy but has no ${MISSING_FILE}; the state is damaged`);
    const missing = Bitmap.from(n, snap);
    const written = new Bitmap(n);
    PresenceLog.replay(this.state.readBytes(LOG_FILE), missing, written);
    await this.openImage(saved.imageSize, saved.blockSize, true);
    this.presence = await PresenceLog.open(this.state.file(LOG_FILE), () => this.disk!.flush());
    this.postcopy!.restore(missing, written);
    this.gate!.open();
    this.o.log.info({ session: saved.session, missingBlocks: missing.count, writtenHere: written.count }, 'resumed post-copy from durable state: serving the VM; waiting for the source');
  }

  /** A new engine (and channel) for the session: the first connection, or after either side restarted. */
  private async begin(socket: net.Socket, hello: Hello, rest: Buffer): Promise<void> {
    const { o } = this;
    const first = !this.hello;
    const previous = this.engine;
    if (previous) {
      // The source restarted: its old in-flight messages are gone. Let the old engine's writes settle first.
      this.channel?.close();
      await previous.supersede();
    }
    const resumed = this.saved !== undefined;
    const preexisting = await this.openImage(hello.imageSize, hello.blockSize, resumed);
    const disk = this.disk!;
    const postcopy = this.postcopy!;
    const gate = this.gate!;
    const mode: 'new' | 'precopy' | 'postcopy' = postcopy.isActive ? 'postcopy' : resumed ? 'precopy' : 'new';
    if (!this.saved) {
      this.saved = { session: hello.session, imageSize: hello.imageSize, blockSize: hello.blockSize, phase: 'precopy' };
      this.state.writeJson(STATE_FILE, this.saved);
    }
    this.hello = hello;
    this.sourceIncarnation = hello.incarnation;
    // A pre-copy resume re-derives what is missing by content id: it always compares with the image.
    const dedup = hello.features.includes('dedup') || mode === 'precopy';
    if (first && dedup && o.indexDir) this.index ??= ReplicaIndex.open(o.indexDir);
    if (first && this.index) this.warnIndexBlockSize(hello.blockSize);
    await this.local?.close();
    const local = new LocalContent({ image: disk, imagePath: resolve(o.image), blockSize: hello.blockSize, content: this.runtime.content, preexisting: preexisting || mode === 'precopy', index: this.index, remote: o.remote, log: o.log });
    this.local = local;
    const asked = featuresFromList(hello.features);
    const features = { ...asked, dedup, prefetch: asked.prefetch && o.prefetch !== false && mode !== 'postcopy' };
    const { channel, engine } = buildTargetSession({
      runtime: this.runtime,
      disks: { postcopy, gate },
      channel: {
        onDisconnect: (err, s) => {
          if (this.channel === s.channel && s.engine.currentPhase !== 'done' && s.engine.currentPhase !== 'failed') {
            o.log.warn({ err: err?.message, phase: s.engine.currentPhase }, 'link to the source lost; waiting for it to reconnect');
          }
        },
        silenceTimeoutMs: o.silenceTimeoutMs,
      },
      engine: {
        log: o.log, onPhase: o.onPhase, features, prefetch: o.prefetchConfig, local: dedup ? local : undefined,
        resumePostcopy: mode === 'postcopy',
        onCutover: async (missing, flushImage) => {
          // Durable before the VM is served here: the image and the snapshot of what is
          // missing (independent, so overlapped), an empty presence log, and only then
          // the phase that makes a restart trust them.
          await Promise.all([flushImage(), this.state.writeAtomicAsync(MISSING_FILE, missing.bits), this.state.writeAtomicAsync(LOG_FILE, new Uint8Array(0))]);
          this.presence = await PresenceLog.open(this.state.file(LOG_FILE), () => disk.flush());
          this.saved = { ...this.saved!, phase: 'postcopy' };
          await this.state.writeJsonAsync(STATE_FILE, this.saved);
        },
      },
    });
    this.channel = channel;
    this.engine = engine;
    const backing = await this.compareBase(hello);
    const offer = dedup && local.hasCandidates;
    this.lastFeatures = [...featureList(features), ...(offer ? ['offer'] : [])];
    if (mode !== 'new') this.resumes.resynced++;
    o.log.info({ session: hello.session, mode, size: hello.imageSize, blockSize: hello.blockSize, algorithm: hello.algorithm, features: hello.features, localContent: offer, nbd: this.nbdAddress && formatAddress(this.nbdAddress) }, mode === 'new' ? 'migration accepted' : 'session continues from durable state');
    writeMessage(socket, {
      type: MsgType.WELCOME,
      welcome: {
        version: WIRE_VERSION, session: hello.session, features: this.lastFeatures, processedSeq: 0, incarnation: this.incarnation, resume: mode, contentIds: this.runtime.content.format,
        backing,
      },
    });
    channel.attach(new SocketTransport(socket), 0, rest);
    engine.result.then(
      async (r) => {
        if (this.engine !== engine) return;
        channel.flushAck();
        this.finished = r;
        // Nothing left to resume; a small marker answers a source that reconnects to learn it.
        this.saved = { ...this.saved!, phase: 'done' };
        this.state.writeJson(STATE_FILE, this.saved);
        this.resolveResult(r);
      },
      (e) => {
        if (this.engine === engine) this.rejectResult(e as Error);
      },
    );
  }

  /** The source's base root against this image's backing file: 'same' lets the source leave out what comes from it. */
  private async compareBase(hello: Hello): Promise<'same' | 'differs' | 'none' | undefined> {
    if (!hello.backingRoot) return undefined;
    const base = this.opened?.backingFile;
    if (!base) return 'none';
    const root = await baseRoot({ file: base.file, format: base.format, blockSize: hello.blockSize, state: this.state, roots: this.baseRoots, runtime: REAL_RUNTIME, log: this.o.log, storageDaemon: this.o.storageDaemon });
    const same = root === hello.backingRoot;
    this.o.log.info({ base: base.file, same }, same ? 'this base matches the source\'s: blocks from the backing chain are not sent' : 'this base differs from the source\'s: its blocks are compared one by one');
    return same ? 'same' : 'differs';
  }

  /** Stops serving: link, NBD export (in-flight requests finish first) and the image. */
  async close(): Promise<void> {
    this.channel?.close();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.nbd?.close();
    await this.presence?.close();
    await this.local?.close();
    await this.index?.close();
    await this.opened?.close();
    // A completed migration leaves no state behind.
    if (this.finished || this.saved?.phase === 'done') this.state.remove();
    const a = this.o.listen;
    if (a.kind === 'unix' && existsSync(a.path)) {
      try { unlinkSync(a.path); } catch { /* gone */ }
    }
  }
}
