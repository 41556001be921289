/**
 * A deliberately low-level NBD peer for robustness tests: it speaks bytes, so
 * tests can send exactly the malformed sequences a real client never would.
 */
import net from 'node:net';
import { ByteReader } from '../../src/util/byte-reader.ts';
import type { Address } from '../../src/util/address.ts';
import { IHAVEOPT, REQUEST_MAGIC } from '../../src/nbd/protocol.ts';

export class RawPeer {
  readonly socket: net.Socket;
  readonly reader: ByteReader;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader = new ByteReader(socket);
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(addr: Address): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = addr.kind === 'unix' ? net.connect(addr.path) : net.connect(addr.port, addr.host);
      s.once('connect', () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  /** Reads the 18-byte greeting and answers with the given client flags. */
  async greet(clientFlags = 3): Promise<{ handshakeFlags: number }> {
    const g = await this.reader.read(18);
    const out = Buffer.alloc(4);
    out.writeUInt32BE(clientFlags >>> 0, 0);
    this.socket.write(out);
    return { handshakeFlags: g.readUInt16BE(16) };
  }

  sendOption(opt: number, data: Buffer = Buffer.alloc(0), magic = IHAVEOPT, lengthOverride?: number): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(magic, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(lengthOverride ?? data.length, 12);
    this.socket.write(Buffer.concat([h, data]));
  }

  async readOptionReply(): Promise<{ opt: number; type: number; data: Buffer }> {
    const h = await this.reader.read(20);
    const len = h.readUInt32BE(16);
    const data = len ? Buffer.from(await this.reader.read(len)) : Buffer.alloc(0);
    return { opt: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }

  /** Reads option replies up to and including the first non-INFO/SERVER/META reply. */
  async readUntilFinal(): Promise<Array<{ opt: number; type: number; data: Buffer }>> {
    const out = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type !== 2 && r.type !== 3 && r.type !== 4) return out;
    }
  }

  sendRequest(type: number, offset: number, length: number, opts: { flags?: number; cookie?: bigint; magic?: number; payload?: Buffer } = {}): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(opts.magic ?? REQUEST_MAGIC, 0);
    h.writeUInt16BE(opts.flags ?? 0, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(opts.cookie ?? 1n, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.socket.write(opts.payload ? Buffer.concat([h, opts.payload]) : h);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function goData(name: string, infos: number[] = []): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((x, i) => b.writeUInt16BE(x, 6 + n.length + 2 * i));
  return b;
}

export function metaData(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.from(name);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n.length);
  parts.push(h, n);
  const c = Buffer.alloc(4);
  c.writeUInt32BE(queries.length);
  parts.push(c);
  for (const q of queries) {
    const qb = Buffer.from(q);
    const l = Buffer.alloc(4);
    l.writeUInt32BE(qb.length);
    parts.push(l, qb);
  }
  return Buffer.concat(parts);
}
