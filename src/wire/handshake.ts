import type { Socket } from 'node:net';
import { ProtocolError, WrongPeerError } from '../errors.ts';
import { canBeFlimcdFrame, describeWrongPeer, PEER_PREFIX_BYTES } from './peer-protocol.ts';
import { FrameDecoder, encodeFrame, type Frame } from './frame.ts';
import { decodeMessage, encodeMessage, type Message } from './messages.ts';

/** The peer closed the connection without sending a byte (a TLS listener drops a plaintext HELLO this way). */
export class SilentCloseError extends ProtocolError {}

/** Writes one unsequenced message (HELLO, WELCOME, ERROR) straight to a socket. */
export function writeMessage(socket: Socket, m: Message): void {
  socket.cork();
  for (const p of encodeFrame(m.type, 0, 0, encodeMessage(m))) socket.write(p);
  socket.uncork();
}

/**
 * Reads exactly one message from a socket before a Channel takes it over.
 * Returns the message and any bytes that arrived after it (they belong to the
 * channel). Bounded by a timeout and by the frame size limit. A reply in
 * another protocol (an NBD greeting, an HTTP response) rejects with
 * WrongPeerError naming it.
 */
export function readMessage(socket: Socket, timeoutMs: number): Promise<{ message: Message; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder();
    let got: Frame | undefined;
    let bytesSeen = 0;
    // The reply's first bytes: enough to tell another protocol (NBD, HTTP) from a flimcd frame.
    let head = Buffer.alloc(0);
    const notFlimcd = () => {
      const { speaks, words } = describeWrongPeer(head);
      return new WrongPeerError(words, speaks);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.pause();
    };
    const fail = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onData = (chunk: Buffer) => {
      bytesSeen += chunk.length;
      if (head.length < PEER_PREFIX_BYTES) head = Buffer.concat([head, chunk.subarray(0, PEER_PREFIX_BYTES - head.length)]);
      if (!canBeFlimcdFrame(head)) {
        // Wait for a few more bytes to name the protocol, unless the peer stops there.
        return head.length < PEER_PREFIX_BYTES ? undefined : fail(notFlimcd());
      }
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        return fail(e as Error);
      }
      if (frames.length === 0) return;
      got = frames[0]!;
      cleanup();
      let message: Message;
      try {
        message = decodeMessage(got.type, got.payload);
      } catch (e) {
        return reject(e);
      }
      // The decoder consumed whole frames from the stream; re-serialise the extra ones for the channel.
      const extra = frames.slice(1).map((f) => Buffer.concat(encodeFrame(f.type, f.flags, f.seq, [f.payload])));
      resolve({ message, rest: Buffer.concat([...extra, decoder.drain()]) });
    };
    const onClose = () => fail(!canBeFlimcdFrame(head) ? notFlimcd() : bytesSeen === 0 ? new SilentCloseError('peer closed the connection during the handshake without a reply') : new ProtocolError('peer closed the connection during the handshake'));
    const onError = (e: Error) => fail(new ProtocolError(`handshake failed: ${e.message}`, { cause: e }));
    const timer = setTimeout(() => fail(!canBeFlimcdFrame(head) ? notFlimcd() : new ProtocolError(`no handshake reply within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}

/**
 * Why two agents cannot migrate together because they name content
 * differently, or undefined when they agree. Formats are names as HELLO and
 * WELCOME carry them (`contentIds`); a peer that sends none predates named
 * formats and uses `unnamed` (BLAKE3). Ids, references, offers and the Merkle
 * root all depend on it, so a mismatch is refused at the handshake.
 */
export function contentIdMismatch(ours: string, theirs: string | undefined, unnamed: string, peer: 'source' | 'target'): string | undefined {
  const peerFormat = theirs ?? unnamed;
  if (peerFormat === ours) return undefined;
  const older = theirs === undefined ? ' (it names none: an older flimcd)' : '';
  return `the ${peer} agent uses ${peerFormat} content ids${older}, this agent ${ours}: run both with the same --content-hash`;
}
