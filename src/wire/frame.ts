import { crc32 } from 'node:zlib';
import { ProtocolError } from '../errors.ts';

/**
 * Framing of the agent-to-agent link. Every frame:
 *
 *   u32 payload length | u8 type | u8 flags | u16 reserved (0) | u32 seq | u32 crc32
 *   payload
 *
 * `seq` numbers reliable messages from 1 up per direction (0 = unsequenced:
 * acks and pings, never retransmitted). The CRC covers the first 12 header
 * bytes and the payload, so corruption anywhere drops the connection instead
 * of reaching a disk. Block bytes are additionally checked end to end by their
 * content id and the final Merkle root.
 */
export const FRAME_HEADER_SIZE = 16;
/** Largest payload: a 1 MiB block plus its metadata, with room to spare. */
export const MAX_FRAME_PAYLOAD = 2 * 1024 * 1024;

/**
 * How a runtime checksums frames. Agents use CRC32_FRAME_CHECKSUM. The
 * simulator (src/sim/content-model.ts) hands its own to the channels it runs:
 * its frames carry modelled blocks whose bytes past a small token are never
 * read, so it checksums what the model carries instead of every byte.
 */
export interface FrameChecksum {
  /** Checksum of the 12 header bytes and a payload given in parts (encoder) … */
  parts(header: Buffer, parts: Buffer[]): number;
  /** … and the same over the payload received whole (decoder). */
  whole(header: Buffer, payload: Buffer): number;
}

/** Real bytes: crc32 over the header and every payload byte. */
export const CRC32_FRAME_CHECKSUM: FrameChecksum = {
  parts(header, parts) {
    let c = crc32(header);
    for (const p of parts) c = crc32(p, c);
    return c;
  },
  whole(header, payload) {
    return crc32(payload, crc32(header));
  },
};

export interface Frame {
  type: number;
  flags: number;
  seq: number;
  /** The payload as received (a view; copy before keeping it past the handler if needed). */
  payload: Buffer;
}

/** Encodes a frame as header + body parts (the parts are sent as is: no copy of block data). */
export function encodeFrame(type: number, flags: number, seq: number, parts: Buffer[], checksum: FrameChecksum = CRC32_FRAME_CHECKSUM): Buffer[] {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > MAX_FRAME_PAYLOAD) throw new ProtocolError(`frame payload of ${len} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const h = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  h.writeUInt32BE(len, 0);
  h.writeUInt8(type, 4);
  h.writeUInt8(flags, 5);
  h.writeUInt16BE(0, 6);
  h.writeUInt32BE(seq >>> 0, 8);
  h.writeUInt32BE(checksum.parts(h.subarray(0, 12), parts) >>> 0, 12);
  return [h, ...parts];
}

/**
 * Incremental decoder: feed it chunks, it returns whole frames. Bounded: it
 * never holds more than one frame plus one chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly checksum: FrameChecksum = CRC32_FRAME_CHECKSUM) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_SIZE) break;
      const head = this.peek(FRAME_HEADER_SIZE);
      const len = head.readUInt32BE(0);
      if (len > MAX_FRAME_PAYLOAD) throw new ProtocolError(`peer sent a frame of ${len} bytes (limit ${MAX_FRAME_PAYLOAD})`);
      if (head.readUInt16BE(6) !== 0) throw new ProtocolError('frame reserved bits are set');
      if (this.buffered < FRAME_HEADER_SIZE + len) break;
      const whole = this.take(FRAME_HEADER_SIZE + len);
      const payload = whole.subarray(FRAME_HEADER_SIZE);
      const want = whole.readUInt32BE(12);
      const got = this.checksum.whole(whole.subarray(0, 12), payload) >>> 0;
      if (got !== want) throw new ProtocolError(`frame checksum mismatch (type ${whole[4]}, seq ${whole.readUInt32BE(8)})`);
      out.push({ type: whole[4]!, flags: whole[5]!, seq: whole.readUInt32BE(8), payload });
    }
    return out;
  }

  get pendingBytes(): number {
    return this.buffered;
  }

  /** Removes and returns the bytes of an incomplete frame still buffered. */
  drain(): Buffer {
    const out = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return out;
  }

  /** The first n bytes, copying only when they straddle chunks (n is a header: small). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  /** Removes and returns n bytes: a view when they lie in one chunk, else one copy of exactly n bytes. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
