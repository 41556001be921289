/**
 * What a peer that is not a flimcd agent speaks, told from the first bytes it
 * sends. A flimcd frame starts with its payload length, a u32 below 2 MiB, so
 * its first byte is always 0; anything else is another protocol, and a few
 * are common enough at a mistyped address to name.
 */

/** An NBD server's greeting, sent as soon as a client connects (NetworkBlockDevice doc/proto.md). */
const NBD_MAGIC = Buffer.from('NBDMAGIC');
/** The start of every HTTP/1.x response. */
const HTTP_RESPONSE = Buffer.from('HTTP/');
/** TLS record types a server answers with: handshake (22) and alert (21), then protocol major version 3. */
const TLS_RECORD_TYPES = new Set([0x15, 0x16]);

/** Bytes needed to tell every protocol below apart. */
export const PEER_PREFIX_BYTES = NBD_MAGIC.length;

/** Whether these first bytes can begin a flimcd frame. */
export function canBeFlimcdFrame(head: Buffer): boolean {
  return head.length === 0 || head[0] === 0;
}

/**
 * The protocol these first bytes of a peer's reply belong to, if known:
 * 'NBD', 'HTTP' or 'TLS'. Undefined when they could be a flimcd frame or are
 * something unrecognised.
 */
export function recognisePeer(head: Buffer): 'NBD' | 'HTTP' | 'TLS' | undefined {
  if (startsWith(head, NBD_MAGIC)) return 'NBD';
  if (startsWith(head, HTTP_RESPONSE)) return 'HTTP';
  if (head.length >= 2 && TLS_RECORD_TYPES.has(head[0]!) && head[1] === 0x03) return 'TLS';
  return undefined;
}

/** A sentence for the operator: what answered instead of a flimcd agent. */
export function describeWrongPeer(head: Buffer): { speaks: string; words: string } {
  const speaks = recognisePeer(head);
  if (speaks) return { speaks, words: `not a flimcd agent: it speaks ${speaks}` };
  const hex = head.subarray(0, PEER_PREFIX_BYTES).toString('hex').replace(/(..)(?=.)/g, '$1 ');
  return { speaks: 'unknown', words: `not a flimcd agent: its first reply begins with bytes ${hex}` };
}

function startsWith(head: Buffer, magic: Buffer): boolean {
  return head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
}
