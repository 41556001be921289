import net from 'node:net';
import { resolve } from 'node:path';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { FileDisk } from '../block/file.ts';
import { GateDisk } from '../block/filters/gate.ts';
import { PostcopyDisk } from '../block/filters/postcopy.ts';
import { NbdServer } from '../nbd/server.ts';
import { formatAddress, type Address } from '../util/address.ts';
import { realClock } from '../util/clock.ts';
import { Channel } from '../wire/channel.ts';
import { SocketTransport } from '../wire/socket-transport.ts';
import { createLinkServer, type LinkSecurity } from '../wire/secure-link.ts';
import { readMessage, writeMessage } from '../wire/handshake.ts';
import { MsgType, WIRE_VERSION, type Hello } from '../wire/messages.ts';
import { TargetEngine, type TargetResult } from './target-engine.ts';
import { LocalContent } from './local-content.ts';
import { ReplicaIndex } from '../index/replica-index.ts';
import type { Phase } from './report.ts';
import { featureList, featuresFromList } from '../policy/algorithm.ts';
import type { PrefetchConfig } from '../policy/prefetch.ts';
import { ProtocolError, UsageError } from '../errors.ts';

export interface TargetAgentOptions {
  image: string;
  /** Where the source agent connects. */
  listen: Address;
  /** Link credentials (TLS certificates, PSK) or an explicit `{ mode: 'insecure' }`. */
  security: LinkSecurity;
  /** Where the VM's NBD export listens once the image size is known. */
  nbd: Address;
  exportName?: string;
  /** Replica index (content id → local location) to build blocks from and to record received blocks in. */
  indexDir?: string;
  /** Take part in prefetch when the source asks for it (default true; false for ablation). */
  prefetch?: boolean;
  prefetchConfig?: Partial<PrefetchConfig>;
  log: Logger;
  onPhase?: (p: Phase) => void;
  /** Called once the VM export is listening (after the source's HELLO). */
  onNbdListening?: (addr: Address) => void;
}

/**
 * The target agent: accepts one migration from a source agent, writes the
 * image, and from cut-over on serves the VM over NBD with post-copy semantics.
 * After the migration it keeps serving the VM (the VM runs on this disk now)
 * until closed.
 */
export class TargetAgent {
  private readonly server: net.Server;
  private engine: TargetEngine | undefined;
  private channel: Channel | undefined;
  private disk: FileDisk | undefined;
  private local: LocalContent | undefined;
  private index: ReplicaIndex | undefined;
  private nbd: NbdServer | undefined;
  private busy = false;
  private resultPromise: Promise<TargetResult>;
  private resolveResult!: (r: TargetResult) => void;
  private rejectResult!: (e: Error) => void;
  private finished: TargetResult | undefined;
  listenAddress: Address | undefined;
  nbdAddress: Address | undefined;

  constructor(private readonly o: TargetAgentOptions) {
    this.server = createLinkServer(o.security, (s) => void this.accept(s), o.log);
    this.resultPromise = new Promise((res, rej) => {
      this.resolveResult = res;
      this.rejectResult = rej;
    });
    this.resultPromise.catch(() => {});
  }

  async listen(): Promise<Address> {
    const a = this.o.listen;
    if (a.kind === 'unix' && existsSync(a.path) && lstatSync(a.path).isSocket()) unlinkSync(a.path);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new UsageError(`--listen: ${formatAddress(a)} is already in use`) : e));
      if (a.kind === 'unix') this.server.listen(a.path, resolve);
      else this.server.listen(a.port, a.host, resolve);
    });
    const ad = this.server.address();
    this.listenAddress = a.kind === 'unix' ? a : { kind: 'tcp', host: a.host, port: (ad as net.AddressInfo).port };
    this.o.log.info({ listen: formatAddress(this.listenAddress) }, 'target agent waiting for the source');
    return this.listenAddress;
  }

  /** Resolves when a migration has completed (verified or not). */
  result(): Promise<TargetResult> {
    return this.resultPromise;
  }

  status(): Record<string, unknown> {
    if (!this.engine) return { role: 'target', phase: 'waiting' };
    const r = this.finished;
    return { role: 'target', ...this.engine.status(), ...(r ? { verified: r.verified, merkleRoot: r.root } : {}) };
  }

  abort(reason: string): void {
    this.engine?.abort(reason);
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
    const refuse = (code: string, message: string) => {
      this.o.log.warn({ code, message }, 'refusing migration');
      writeMessage(socket, { type: MsgType.ERROR, code, message });
      socket.end();
    };
    if (this.busy) return refuse('BUSY', 'this target agent is already receiving a migration');
    if (Math.floor(hello.version) !== WIRE_VERSION) return refuse('VERSION', `wire version ${hello.version} is not supported (this agent speaks ${WIRE_VERSION})`);
    if (hello.imageSize % 512 !== 0) return refuse('GEOMETRY', `image size ${hello.imageSize} is not a multiple of 512`);
    this.busy = true;
    try {
      await this.begin(socket, hello, rest);
    } catch (e) {
      this.busy = false;
      refuse('SETUP', (e as Error).message);
    }
  }

  private async begin(socket: net.Socket, hello: Hello, rest: Buffer): Promise<void> {
    const { o } = this;
    if (existsSync(o.image)) {
      const size = lstatSync(o.image).size;
      if (size !== 0 && size !== hello.imageSize) {
        throw new UsageError(`${o.image} exists with ${size} bytes but the source image has ${hello.imageSize}; refusing to overwrite a different disk`);
      }
    }
    const preexisting = existsSync(o.image) && lstatSync(o.image).size === hello.imageSize;
    const disk = await FileDisk.open(o.image, { create: true, size: hello.imageSize });
    this.disk = disk;
    const dedup = hello.features.includes('dedup');
    if (dedup && o.indexDir) this.index = ReplicaIndex.open(o.indexDir);
    const local = new LocalContent({ image: disk, imagePath: resolve(o.image), blockSize: hello.blockSize, preexisting, index: this.index, log: o.log });
    this.local = local;
    let engine!: TargetEngine;
    const channel = new Channel({
      clock: realClock,
      onMessage: (m) => engine.handle(m),
      onDisconnect: (err) => {
        if (engine.currentPhase !== 'done') engine.abort(`link to the source lost${err ? `: ${err.message}` : ''}`);
      },
    });
    this.channel = channel;
    const postcopy = new PostcopyDisk(disk, hello.blockSize, { fetch: (b) => engine.blockSource().fetch(b), cancel: (b) => engine.blockSource().cancel(b) }, realClock);
    const gate = new GateDisk(postcopy, 'held');
    // Prefetch needs this side; the source's other features need nothing from it.
    const asked = featuresFromList(hello.features);
    const features = { ...asked, prefetch: asked.prefetch && o.prefetch !== false };
    engine = new TargetEngine({ disk: postcopy, gate, channel, clock: realClock, log: o.log, onPhase: o.onPhase, features, prefetch: o.prefetchConfig, local: dedup ? local : undefined });
    this.engine = engine;
    const nbd = new NbdServer({ exports: [{ name: o.exportName ?? '', description: `flimcd target ${o.image}`, disk: gate }], log: o.log.child({ component: 'nbd' }) });
    this.nbdAddress = await nbd.listen(o.nbd);
    this.nbd = nbd;
    o.onNbdListening?.(this.nbdAddress);
    const offer = dedup && local.hasCandidates;
    o.log.info({ session: hello.session, size: hello.imageSize, blockSize: hello.blockSize, algorithm: hello.algorithm, features: hello.features, localContent: offer, nbd: formatAddress(this.nbdAddress) }, 'migration accepted');
    writeMessage(socket, { type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: hello.session, features: [...featureList(features), ...(offer ? ['offer'] : [])], processedSeq: 0 } });
    channel.attach(new SocketTransport(socket), hello.processedSeq, rest);
    engine.result.then(
      (r) => {
        channel.flushAck();
        this.finished = r;
        this.resolveResult(r);
      },
      (e) => this.rejectResult(e as Error),
    );
  }

  /** Stops serving: link, NBD export (in-flight requests finish first) and the image. */
  async close(): Promise<void> {
    this.channel?.close();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.nbd?.close();
    await this.local?.close();
    await this.index?.close();
    await this.disk?.close();
    const a = this.o.listen;
    if (a.kind === 'unix' && existsSync(a.path)) {
      try { unlinkSync(a.path); } catch { /* gone */ }
    }
  }
}
