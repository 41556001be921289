/**
 * A buffer for one block's bytes on its way from a disk to the link (or from
 * a local copy to the target image): Buffer.allocUnsafe.
 *
 * The simulator's seam (src/sim/content-model.ts): its modelled blocks carry
 * a small token and filler nobody reads, so it installs an allocator whose
 * buffers share their filler (src/sim/overlap-arena.ts) instead of 64 KiB
 * each. Only the simulator installs one, for the length of a run; agents
 * always get a buffer of their own.
 */
let allocator: ((length: number) => Buffer) | undefined;

export function allocBlock(length: number): Buffer {
  return allocator ? allocator(length) : Buffer.allocUnsafe(length);
}

/** Installs (or with undefined removes) the simulator's block allocator for this process. */
export function setBlockAllocator(fn: ((length: number) => Buffer) | undefined): void {
  allocator = fn;
}
