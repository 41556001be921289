import type { BlockTag } from './block-tag.ts';
import { MsgType } from './messages.ts';

/** Blocks put on the link, by the form they travelled in. */
export interface BlockCounts {
  dataBlocks: number;
  /** Of dataBlocks, those sent zstd-compressed. */
  compressedBlocks: number;
  /** Block bytes of dataBlocks before and after compression. */
  dataRawBytes: number;
  dataWireBytes: number;
  zeroBlocks: number;
  refBlocks: number;
}

/** Link bytes both ways by what they carried (control is everything else: acks, pings, handshakes). */
export interface WireBreakdown {
  data: number;
  reference: number;
  zero: number;
  control: number;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(MsgType).map(([k, v]) => [v, k])) as Record<number, string>;

const noBlocks = (): BlockCounts => ({ dataBlocks: 0, compressedBlocks: 0, dataRawBytes: 0, dataWireBytes: 0, zeroBlocks: 0, refBlocks: 0 });

/**
 * One account of what crossed a channel's link: every frame's bytes by
 * message type (framing included, both ways), and the blocks the sender put
 * on the link by form. Blocks count when queued; those taken back before they
 * were sent (the cut-over lists them as missing instead) move to `purged`.
 */
export class WireLedger {
  /** Bytes written to the transport, and bytes read from it (partial frames included). */
  bytesSent = 0;
  bytesReceived = 0;
  framesSent = 0;
  framesReceived = 0;
  /** Bytes per message type name, framing included. */
  readonly sentByType: Record<string, number> = {};
  readonly receivedByType: Record<string, number> = {};
  /** Blocks queued for the link, less those taken back. */
  readonly blocks: BlockCounts = noBlocks();
  /** Blocks taken back before they were sent. */
  readonly purged: BlockCounts = noBlocks();

  frameSent(type: number, bytes: number): void {
    this.bytesSent += bytes;
    this.framesSent++;
    const name = typeName(type);
    this.sentByType[name] = (this.sentByType[name] ?? 0) + bytes;
  }

  bytesArrived(bytes: number): void {
    this.bytesReceived += bytes;
  }

  frameReceived(type: number, bytes: number): void {
    this.framesReceived++;
    const name = typeName(type);
    this.receivedByType[name] = (this.receivedByType[name] ?? 0) + bytes;
  }

  /** A block message was queued for the link. */
  queued(tag: BlockTag): void {
    add(this.blocks, tag, 1);
  }

  /** A queued block message was taken back before it was sent. */
  takenBack(tag: BlockTag): void {
    add(this.blocks, tag, -1);
    add(this.purged, tag, 1);
  }

  get wireBytes(): number {
    return this.bytesSent + this.bytesReceived;
  }

  breakdown(): WireBreakdown {
    const both = (k: string) => (this.sentByType[k] ?? 0) + (this.receivedByType[k] ?? 0);
    const data = both('DATA');
    const zero = both('ZERO');
    const reference = both('REF') + both('OFFER') + both('HAVE');
    return { data, reference, zero, control: this.wireBytes - data - zero - reference };
  }
}

function typeName(type: number): string {
  return TYPE_NAMES[type] ?? String(type);
}

function add(c: BlockCounts, tag: BlockTag, sign: 1 | -1): void {
  switch (tag.kind) {
    case 'data':
      c.dataBlocks += sign;
      c.dataRawBytes += sign * tag.rawBytes;
      c.dataWireBytes += sign * tag.wireBytes;
      if (tag.compressed) c.compressedBlocks += sign;
      return;
    case 'ref':
      c.refBlocks += sign;
      return;
    case 'zero':
      c.zeroBlocks += sign * tag.count;
      return;
    case 'offer':
      return; // offered blocks are counted per block by the sender; the offer's own blocks come back from it
  }
}
