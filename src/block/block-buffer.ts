/**
 * Where a runtime gets a buffer for one block's bytes on their way from a
 * disk to the link (or from a local copy to the target image).
 *
 * Agents use allocUnsafeBlock: a buffer of its own per block. The simulator
 * (src/sim/content-model.ts) hands its own to the code it runs: its modelled
 * blocks carry a small token and filler nobody reads, so their buffers share
 * the filler (src/sim/overlap-arena.ts) instead of 64 KiB each.
 */
export type BlockAllocator = (length: number) => Buffer;

/** Real bytes: Buffer.allocUnsafe. */
export const allocUnsafeBlock: BlockAllocator = (length) => Buffer.allocUnsafe(length);
