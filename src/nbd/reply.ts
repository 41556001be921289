import {
  ReplyFlags, ReplyType, SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE, STRUCTURED_REPLY_HEADER_SIZE, STRUCTURED_REPLY_MAGIC,
} from './protocol.ts';

/** Encoders for transmission-phase replies. Read replies are allocated with room for the data so it is read in place. */

export function simpleReply(cookie: Buffer, errno: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(errno, 4);
  cookie.copy(b, 8);
  return b;
}

/** A simple read reply with `length` bytes of room after the header; returns the buffer and the data view. */
export function simpleReadReply(cookie: Buffer, length: number): { reply: Buffer; data: Buffer } {
  const reply = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE + length);
  reply.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  reply.writeUInt32BE(0, 4);
  cookie.copy(reply, 8);
  return { reply, data: reply.subarray(SIMPLE_REPLY_SIZE) };
}

function chunkHeader(b: Buffer, flags: number, type: number, cookie: Buffer, length: number): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  cookie.copy(b, 8);
  b.writeUInt32BE(length, 16);
}

/** One OFFSET_DATA chunk marked DONE, with room for the data. */
export function structuredReadReply(cookie: Buffer, offset: number, length: number): { reply: Buffer; data: Buffer } {
  const reply = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + 8 + length);
  chunkHeader(reply, ReplyFlags.DONE, ReplyType.OFFSET_DATA, cookie, 8 + length);
  writeU64(reply, STRUCTURED_REPLY_HEADER_SIZE, offset);
  return { reply, data: reply.subarray(STRUCTURED_REPLY_HEADER_SIZE + 8) };
}

export function noneChunk(cookie: Buffer): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE);
  chunkHeader(b, ReplyFlags.DONE, ReplyType.NONE, cookie, 0);
  return b;
}

/** A final ERROR chunk carrying a human-readable message (truncated to fit 16 bits and kept UTF-8 whole). */
export function errorChunk(cookie: Buffer, errno: number, message: string): Buffer {
  let msg = Buffer.from(message, 'utf8');
  if (msg.length > 4096) msg = Buffer.from(message.slice(0, 1024), 'utf8');
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + 6 + msg.length);
  chunkHeader(b, ReplyFlags.DONE, ReplyType.ERROR, cookie, 6 + msg.length);
  b.writeUInt32BE(errno, STRUCTURED_REPLY_HEADER_SIZE);
  b.writeUInt16BE(msg.length, STRUCTURED_REPLY_HEADER_SIZE + 4);
  msg.copy(b, STRUCTURED_REPLY_HEADER_SIZE + 6);
  return b;
}

/** A final BLOCK_STATUS chunk for one context: descriptors are [length, flags] pairs. */
export function blockStatusChunk(cookie: Buffer, contextId: number, descriptors: Array<[number, number]>): Buffer {
  const len = 4 + 8 * descriptors.length;
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + len);
  chunkHeader(b, ReplyFlags.DONE, ReplyType.BLOCK_STATUS, cookie, len);
  let p = STRUCTURED_REPLY_HEADER_SIZE;
  b.writeUInt32BE(contextId, p);
  p += 4;
  for (const [l, f] of descriptors) {
    b.writeUInt32BE(l, p);
    b.writeUInt32BE(f, p + 4);
    p += 8;
  }
  return b;
}

export function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}
