/**
 * `flimcd replica-server`: serves this host's blocks to sibling target hosts
 * by content id, read-only, from the images registered in its replica index
 * (never any other file), over TLS with the agents' credentials. Its clients
 * are sibling target agents, so with certificates it presents the target's
 * certificate and accepts only a client certificate naming flimcd-target
 * (or --tls-peer-name), never a source's. Bounded: the
 * link listener's connection limit, a fixed number of requests in flight per
 * connection (reading pauses beyond it), a small cache of open files.
 */
import type net from 'node:net';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { formatAddress, type Address } from '../util/address.ts';
import { removeStaleSocket } from '../util/unix-socket.ts';
import { createLinkServer, ROLE_CERT_NAME, type LinkSecurity } from '../wire/secure-link.ts';
import type { ReplicaIndex, IndexedImage } from '../replica-index/replica-index.ts';
import { UsageError } from '../errors.ts';
import { Semaphore } from '../util/semaphore.ts';
import {
  REPLICA_MAGIC, REQUEST_BYTES, ReplyStatus, decodeRequest, encodeReplyHeader, type ReplicaRequest,
} from './replica-protocol.ts';

/** Requests one connection may have in flight; further ones wait in the socket. */
const MAX_IN_FLIGHT = 64;
/** Files held open at once. */
const MAX_OPEN_FILES = 32;
/** Block reads at once over all connections: each holds a buffer of up to 1 MiB. */
const MAX_READS = 64;

export interface ReplicaServerOptions {
  index: ReplicaIndex;
  listen: Address;
  security: LinkSecurity;
  log: Logger;
}

export class ReplicaServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly files = new Map<string, Promise<FileHandle>>();
  private images = new Map<number, IndexedImage>();
  private readonly reads = new Semaphore(MAX_READS);
  readonly stats = { requests: 0, served: 0, servedBytes: 0, notFound: 0 };
  address: Address | undefined;

  constructor(private readonly o: ReplicaServerOptions) {
    // The link server's default client is a source: here it is a sibling target (an explicit peer name still wins).
    const security: LinkSecurity = o.security.mode === 'cert' ? { ...o.security, peerName: o.security.peerName ?? ROLE_CERT_NAME.target } : o.security;
    this.server = createLinkServer(security, (s) => this.serve(s), o.log);
  }

  async listen(): Promise<Address> {
    const a = this.o.listen;
    if (a.kind === 'unix') await removeStaleSocket(a.path, '--listen');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new UsageError(`--listen: ${formatAddress(a)} is already in use`) : e));
      if (a.kind === 'unix') this.server.listen(a.path, resolve);
      else this.server.listen(a.port, a.host, resolve);
    });
    const ad = this.server.address() as net.AddressInfo | string;
    this.address = a.kind === 'unix' ? a : { kind: 'tcp', host: a.host, port: (ad as net.AddressInfo).port };
    this.o.log.info({ listen: formatAddress(this.address), images: this.o.index.list().length }, 'replica server: serving registered images by content id (read-only)');
    return this.address;
  }

  private serve(s: net.Socket): void {
    this.sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => this.sockets.delete(s));
    let buf: Buffer = Buffer.alloc(0);
    let greeted = false;
    let inFlight = 0;
    const pump = () => {
      if (!greeted) {
        if (buf.length < REPLICA_MAGIC.length) return;
        if (!buf.subarray(0, REPLICA_MAGIC.length).equals(REPLICA_MAGIC)) {
          this.o.log.warn({ peer: s.remoteAddress }, 'replica server: a peer that does not speak the replica protocol; closed');
          s.destroy();
          return;
        }
        buf = buf.subarray(REPLICA_MAGIC.length);
        greeted = true;
        s.write(REPLICA_MAGIC);
      }
      while (buf.length >= REQUEST_BYTES && inFlight < MAX_IN_FLIGHT) {
        let req: ReplicaRequest;
        try {
          req = decodeRequest(buf.subarray(0, REQUEST_BYTES));
        } catch (e) {
          this.o.log.warn({ err: (e as Error).message }, 'replica server: bad request; connection closed');
          s.destroy();
          return;
        }
        buf = buf.subarray(REQUEST_BYTES);
        inFlight++;
        void this.reads.run(() => this.answer(req)).then((reply) => {
          inFlight--;
          if (!s.destroyed) s.write(reply);
          if (s.isPaused()) s.resume();
          pump();
        });
      }
      // Back-pressure: stop reading while the in-flight limit is reached.
      if (inFlight >= MAX_IN_FLIGHT) s.pause();
    };
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      pump();
    });
  }

  /** The block for a request, by id in the index first, else at the hinted place in a registered image. */
  private async answer(req: ReplicaRequest): Promise<Buffer> {
    this.stats.requests++;
    try {
      let where = this.o.index.lookup(req.blockSize, req.id);
      if (!where) {
        const im = this.image(req.image);
        if (im && im.blockSize === req.blockSize) where = { path: im.path, offset: req.block * req.blockSize };
      }
      if (where) {
        const f = await this.file(where.path);
        const data = Buffer.alloc(req.blockSize);
        const { bytesRead } = await f.read(data, 0, req.blockSize, where.offset);
        if (bytesRead > 0) {
          this.stats.served++;
          this.stats.servedBytes += bytesRead;
          return Buffer.concat([encodeReplyHeader(req.reqId, ReplyStatus.OK, bytesRead), data.subarray(0, bytesRead)]);
        }
      }
      this.stats.notFound++;
      return encodeReplyHeader(req.reqId, ReplyStatus.NOT_FOUND, 0);
    } catch (e) {
      this.o.log.debug({ err: (e as Error).message }, 'replica server: read failed');
      return encodeReplyHeader(req.reqId, ReplyStatus.FAILED, 0);
    }
  }

  private image(no: number): IndexedImage | undefined {
    let im = this.images.get(no);
    if (!im) {
      // Images are registered while this runs (a target agent records what it receives): look again.
      this.images = new Map(this.o.index.list().map((i) => [i.no, i]));
      im = this.images.get(no);
    }
    return im;
  }

  private file(path: string): Promise<FileHandle> {
    let f = this.files.get(path);
    if (!f) {
      if (this.files.size >= MAX_OPEN_FILES) {
        const [old, h] = this.files.entries().next().value as [string, Promise<FileHandle>];
        this.files.delete(old);
        void h.then((x) => x.close()).catch(() => {});
      }
      f = open(path, 'r');
      this.files.set(path, f);
      f.catch(() => this.files.delete(path));
    }
    return f;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    for (const f of this.files.values()) await f.then((h) => h.close()).catch(() => {});
    this.files.clear();
  }
}
