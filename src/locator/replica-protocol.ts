/**
 * The LAN fetch protocol between a target agent and a sibling host's
 * `flimcd replica-server`, inside an authenticated link (src/wire/secure-link.ts):
 *
 *   client → server, once:  MAGIC (8 bytes)
 *   server → client, once:  MAGIC
 *   request (40 bytes):     reqId u32 | blockSize u32 | image u32 | block u64 | id prefix (16 bytes) | 0 u32
 *   reply (12 + n bytes):   reqId u32 | status u8 | 0 u8 u16 | n u32 | n bytes of the block
 *
 * `image`/`block` are the locator's hint (the image's number in the server's
 * replica index); the id is what the server looks up first. The server never
 * checks what it sends: the client re-hashes every block before using it.
 */
import { ProtocolError } from '../errors.ts';

export const REPLICA_MAGIC = Buffer.from('FLMCDRP1');
export const REQUEST_BYTES = 40;
export const REPLY_HEADER_BYTES = 12;
export const REQUEST_ID_BYTES = 16;
/** Largest block a reply carries (the largest --block-size). */
export const MAX_REPLY_BLOCK = 1 << 20;

export const ReplyStatus = { OK: 0, NOT_FOUND: 1, FAILED: 2 } as const;
export type ReplyStatus = (typeof ReplyStatus)[keyof typeof ReplyStatus];

export interface ReplicaRequest {
  reqId: number;
  blockSize: number;
  image: number;
  block: number;
  id: Uint8Array;
}

export function encodeRequest(r: ReplicaRequest): Buffer {
  const b = Buffer.alloc(REQUEST_BYTES);
  b.writeUInt32BE(r.reqId >>> 0, 0);
  b.writeUInt32BE(r.blockSize, 4);
  b.writeUInt32BE(r.image >>> 0, 8);
  b.writeBigUInt64BE(BigInt(r.block), 12);
  b.set(r.id.subarray(0, REQUEST_ID_BYTES), 20);
  return b;
}

export function decodeRequest(b: Buffer): ReplicaRequest {
  const blockSize = b.readUInt32BE(4);
  if (blockSize < 512 || blockSize > MAX_REPLY_BLOCK) throw new ProtocolError(`replica request for block size ${blockSize}`);
  const block = b.readBigUInt64BE(12);
  if (block > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`replica request for block ${block}`);
  return { reqId: b.readUInt32BE(0), blockSize, image: b.readUInt32BE(8), block: Number(block), id: Buffer.from(b.subarray(20, 20 + REQUEST_ID_BYTES)) };
}

export function encodeReplyHeader(reqId: number, status: ReplyStatus, length: number): Buffer {
  const b = Buffer.alloc(REPLY_HEADER_BYTES);
  b.writeUInt32BE(reqId >>> 0, 0);
  b.writeUInt8(status, 4);
  b.writeUInt32BE(length, 8);
  return b;
}

export function decodeReplyHeader(b: Buffer): { reqId: number; status: number; length: number } {
  const length = b.readUInt32BE(8);
  if (length > MAX_REPLY_BLOCK) throw new ProtocolError(`replica reply of ${length} bytes`);
  return { reqId: b.readUInt32BE(0), status: b.readUInt8(4), length };
}
