import type { Socket } from 'node:net';
import type { ByteReader } from '../util/byte-reader.ts';
import { ProtocolError } from '../errors.ts';
import type { NbdExport } from './export.ts';
import { transmissionFlags } from './export.ts';
import { writeU64 } from './reply.ts';
import {
  BASE_ALLOCATION, ClientFlags, HandshakeFlags, IHAVEOPT, Info, MAX_OPTION_LENGTH, MAX_PAYLOAD, MAX_STRING, NBDMAGIC,
  OPTION_REPLY_MAGIC, Opt, Rep, optName,
} from './protocol.ts';

/** The single metadata context we serve, and the id we give it. */
export const BASE_ALLOCATION_ID = 1;

export interface ExportDirectory {
  find(name: string): NbdExport | undefined;
  list(): NbdExport[];
}

export interface Negotiated {
  export: NbdExport;
  structuredReplies: boolean;
  /** Context id of base:allocation if the client selected it for this export. */
  baseAllocationId: number | undefined;
}

/** Most options one client may send before it must pick an export: stops option floods. */
const MAX_OPTIONS = 1024;
/** Payloads larger than this are not even drained; the connection is dropped. */
const MAX_DRAIN = 16 * 1024 * 1024;

class OptionError extends Error {
  constructor(readonly rep: number, message: string) {
    super(message);
  }
}

/**
 * Fixed-newstyle negotiation (doc/proto.md "Handshake"). Resolves with the
 * chosen export, or undefined when the client aborted. Throws ProtocolError
 * for violations; the caller then drops only this connection.
 */
export async function negotiate(socket: Socket, reader: ByteReader, dir: ExportDirectory): Promise<Negotiated | undefined> {
  const greeting = Buffer.allocUnsafe(18);
  greeting.writeBigUInt64BE(NBDMAGIC, 0);
  greeting.writeBigUInt64BE(IHAVEOPT, 8);
  greeting.writeUInt16BE(HandshakeFlags.FIXED_NEWSTYLE | HandshakeFlags.NO_ZEROES, 16);
  socket.write(greeting);

  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  if (clientFlags & ~(ClientFlags.FIXED_NEWSTYLE | ClientFlags.NO_ZEROES)) {
    throw new ProtocolError(`client sent unknown handshake flags 0x${clientFlags.toString(16)}`);
  }
  const noZeroes = (clientFlags & ClientFlags.NO_ZEROES) !== 0;
  const fixed = (clientFlags & ClientFlags.FIXED_NEWSTYLE) !== 0;

  let structuredReplies = false;
  let meta: { exportName: string; id: number } | undefined;

  const reply = (opt: number, type: number, data?: Buffer) => {
    const len = data?.length ?? 0;
    const h = Buffer.allocUnsafe(20);
    h.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(len, 16);
    socket.write(data && len ? Buffer.concat([h, data]) : h);
  };

  for (let n = 0; n < MAX_OPTIONS; n++) {
    const head = await reader.read(16);
    if (head.readBigUInt64BE(0) !== IHAVEOPT) throw new ProtocolError('bad option magic');
    const opt = head.readUInt32BE(8);
    const len = head.readUInt32BE(12);
    if (len > MAX_OPTION_LENGTH) {
      if (len > MAX_DRAIN || !fixed) throw new ProtocolError(`option ${optName(opt)} payload of ${len} bytes is too large`);
      await reader.skip(len);
      reply(opt, Rep.ERR_TOO_BIG, Buffer.from(`option payload of ${len} bytes is too large`));
      continue;
    }
    const data = len ? Buffer.from(await reader.read(len)) : Buffer.alloc(0);

    if (opt === Opt.EXPORT_NAME) {
      const name = data.toString('utf8');
      const exp = dir.find(name);
      // EXPORT_NAME cannot carry an error: the spec says to close the session.
      if (!exp) throw new ProtocolError(`client asked for unknown export "${name}" with EXPORT_NAME`);
      const out = Buffer.alloc(noZeroes ? 10 : 134);
      writeU64(out, 0, exp.disk.size);
      out.writeUInt16BE(transmissionFlags(exp.disk, structuredReplies), 8);
      socket.write(out);
      return { export: exp, structuredReplies, baseAllocationId: metaFor(meta, name) };
    }
    if (!fixed) throw new ProtocolError(`option ${optName(opt)} needs fixed newstyle`);

    try {
      switch (opt) {
        case Opt.ABORT:
          reply(opt, Rep.ACK);
          return undefined;
        case Opt.LIST: {
          if (len !== 0) throw new OptionError(Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
          for (const e of dir.list()) {
            const name = Buffer.from(e.name, 'utf8');
            const desc = Buffer.from(e.description ?? '', 'utf8');
            const d = Buffer.allocUnsafe(4 + name.length + desc.length);
            d.writeUInt32BE(name.length, 0);
            name.copy(d, 4);
            desc.copy(d, 4 + name.length);
            reply(opt, Rep.SERVER, d);
          }
          reply(opt, Rep.ACK);
          break;
        }
        case Opt.STRUCTURED_REPLY:
          if (len !== 0) throw new OptionError(Rep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          structuredReplies = true;
          reply(opt, Rep.ACK);
          break;
        case Opt.INFO:
        case Opt.GO: {
          const { name, requests } = parseInfoRequest(data);
          const exp = dir.find(name);
          if (!exp) throw new OptionError(Rep.ERR_UNKNOWN, `unknown export "${name}"`);
          const disk = exp.disk;
          const ex = Buffer.allocUnsafe(12);
          ex.writeUInt16BE(Info.EXPORT, 0);
          writeU64(ex, 2, disk.size);
          ex.writeUInt16BE(transmissionFlags(disk, structuredReplies), 10);
          reply(opt, Rep.INFO, ex);
          if (requests.includes(Info.NAME)) {
            const nb = Buffer.from(exp.name, 'utf8');
            const b = Buffer.allocUnsafe(2 + nb.length);
            b.writeUInt16BE(Info.NAME, 0);
            nb.copy(b, 2);
            reply(opt, Rep.INFO, b);
          }
          if (requests.includes(Info.DESCRIPTION) && exp.description) {
            const db = Buffer.from(exp.description, 'utf8');
            const b = Buffer.allocUnsafe(2 + db.length);
            b.writeUInt16BE(Info.DESCRIPTION, 0);
            db.copy(b, 2);
            reply(opt, Rep.INFO, b);
          }
          // Always sent: it costs nothing and tells every client our payload limit.
          const bs = Buffer.allocUnsafe(14);
          bs.writeUInt16BE(Info.BLOCK_SIZE, 0);
          bs.writeUInt32BE(Math.max(1, disk.blockSize.minimum), 2);
          bs.writeUInt32BE(disk.blockSize.preferred, 6);
          bs.writeUInt32BE(Math.min(disk.blockSize.maximum, MAX_PAYLOAD), 10);
          reply(opt, Rep.INFO, bs);
          reply(opt, Rep.ACK);
          if (opt === Opt.GO) return { export: exp, structuredReplies, baseAllocationId: metaFor(meta, name) };
          break;
        }
        case Opt.LIST_META_CONTEXT:
        case Opt.SET_META_CONTEXT: {
          if (!structuredReplies) throw new OptionError(Rep.ERR_INVALID, 'metadata contexts need structured replies first');
          const { name, queries } = parseMetaRequest(data);
          if (!dir.find(name)) throw new OptionError(Rep.ERR_UNKNOWN, `unknown export "${name}"`);
          const isSet = opt === Opt.SET_META_CONTEXT;
          let selected = false;
          const matches = (q: string) => q === BASE_ALLOCATION || (!isSet && q === 'base:');
          if ((queries.length === 0 && !isSet) || queries.some(matches)) {
            const nb = Buffer.from(BASE_ALLOCATION);
            const b = Buffer.allocUnsafe(4 + nb.length);
            b.writeUInt32BE(isSet ? BASE_ALLOCATION_ID : 0, 0);
            nb.copy(b, 4);
            reply(opt, Rep.META_CONTEXT, b);
            selected = true;
          }
          if (isSet) meta = selected ? { exportName: name, id: BASE_ALLOCATION_ID } : undefined;
          reply(opt, Rep.ACK);
          break;
        }
        default:
          // STARTTLS, EXTENDED_HEADERS and anything unknown: not supported here.
          throw new OptionError(Rep.ERR_UNSUP, `option ${optName(opt)} is not supported`);
      }
    } catch (e) {
      if (!(e instanceof OptionError)) throw e;
      reply(opt, e.rep, Buffer.from(e.message, 'utf8'));
    }
  }
  throw new ProtocolError(`client sent more than ${MAX_OPTIONS} options without choosing an export`);
}

/** Selected contexts apply only to the export they were set for. */
function metaFor(meta: { exportName: string; id: number } | undefined, name: string): number | undefined {
  return meta && meta.exportName === name ? meta.id : undefined;
}

function parseInfoRequest(d: Buffer): { name: string; requests: number[] } {
  if (d.length < 6) throw new OptionError(Rep.ERR_INVALID, 'INFO/GO request too short');
  const nameLen = d.readUInt32BE(0);
  if (nameLen > MAX_STRING || 4 + nameLen + 2 > d.length) throw new OptionError(Rep.ERR_INVALID, 'INFO/GO name length is inconsistent');
  const name = d.toString('utf8', 4, 4 + nameLen);
  const count = d.readUInt16BE(4 + nameLen);
  if (d.length !== 4 + nameLen + 2 + 2 * count) throw new OptionError(Rep.ERR_INVALID, 'INFO/GO request count is inconsistent');
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(d.readUInt16BE(4 + nameLen + 2 + 2 * i));
  return { name, requests };
}

function parseMetaRequest(d: Buffer): { name: string; queries: string[] } {
  if (d.length < 8) throw new OptionError(Rep.ERR_INVALID, 'meta context request too short');
  const nameLen = d.readUInt32BE(0);
  if (nameLen > MAX_STRING || 4 + nameLen + 4 > d.length) throw new OptionError(Rep.ERR_INVALID, 'meta context export name length is inconsistent');
  const name = d.toString('utf8', 4, 4 + nameLen);
  let p = 4 + nameLen;
  const count = d.readUInt32BE(p);
  p += 4;
  if (count > 1024) throw new OptionError(Rep.ERR_TOO_BIG, `too many meta context queries (${count})`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (p + 4 > d.length) throw new OptionError(Rep.ERR_INVALID, 'meta context query list is truncated');
    const ql = d.readUInt32BE(p);
    p += 4;
    if (ql > MAX_STRING || p + ql > d.length) throw new OptionError(Rep.ERR_INVALID, 'meta context query length is inconsistent');
    queries.push(d.toString('utf8', p, p + ql));
    p += ql;
  }
  if (p !== d.length) throw new OptionError(Rep.ERR_INVALID, 'trailing bytes after meta context queries');
  return { name, queries };
}
