/**
 * What a queued block message carries, named by the sender when it queues the
 * message. The channel finds queued messages by tag (to take them back at the
 * cut-over, or move one ahead for a fetch) and the wire ledger counts them by
 * it, so nobody reads back bytes they encoded themselves.
 */
export type BlockTag =
  | { kind: 'data'; block: number; /** Block bytes before compression. */ rawBytes: number; /** Payload bytes on the wire. */ wireBytes: number; compressed: boolean }
  | { kind: 'ref'; block: number }
  | { kind: 'zero'; first: number; count: number }
  | { kind: 'offer'; batch: number };

/** The blocks whose content a tagged message sets, as [first, count]; an offer sets none. */
export function taggedBlocks(tag: BlockTag): [first: number, count: number] {
  switch (tag.kind) {
    case 'data':
    case 'ref':
      return [tag.block, 1];
    case 'zero':
      return [tag.first, tag.count];
    case 'offer':
      return [0, 0];
  }
}

/** Does the message set block `b`'s content by itself (DATA or REF of exactly that block)? */
export function carriesBlock(tag: BlockTag, b: number): boolean {
  return (tag.kind === 'data' || tag.kind === 'ref') && tag.block === b;
}
