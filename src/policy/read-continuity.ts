/**
 * Tells sequential reads from random ones at byte level: a read is sequential
 * when it starts exactly where a recent read ended (as Linux readahead checks
 * page continuity). Block numbers alone cannot tell them apart: a random 8 KiB
 * read into a hot 64 KiB-block area lands in the block after an earlier one
 * often enough to pass for a stream, and each false stream fetches blocks
 * nobody reads. Bounded: the ends of the last `capacity` reads.
 */
export class ReadContinuity {
  /** End offsets of recent reads, oldest first. */
  private readonly ends = new Set<number>();

  constructor(readonly capacity = 64) {}

  /** A read of `length` bytes at `offset`: returns whether it continues a recent read. */
  read(offset: number, length: number): boolean {
    const continues = this.ends.delete(offset);
    const end = offset + length;
    this.ends.delete(end);
    this.ends.add(end);
    if (this.ends.size > this.capacity) this.ends.delete(this.ends.keys().next().value!);
    return continues;
  }
}
