/** Bits per page: 64 Ki bits, an 8 KiB page. */
const PAGE_BITS = 1 << 16;

/**
 * A set of small integers in [0, size) as bits in pages allocated on first
 * set (only integers in range are members): building one costs nothing whatever the size, memory and clearAll()
 * follow the pages touched, and the worst case is size / 8 bytes (as a
 * plain bitmap). For per-block flags at a terabyte image's block count
 * where only the blocks still missing are ever set.
 */
export class SparseBits {
  private readonly pages = new Map<number, Uint8Array>();
  private n = 0;

  constructor(readonly size: number) {}

  /** Bits set. */
  get count(): number {
    return this.n;
  }

  has(i: number): boolean {
    if (!(Number.isInteger(i) && i >= 0 && i < this.size)) return false;
    const page = this.pages.get(Math.floor(i / PAGE_BITS));
    if (!page) return false;
    const at = i % PAGE_BITS;
    return (page[at >>> 3]! & (1 << (at & 7))) !== 0;
  }

  /** Sets bit i (ignored outside [0, size)); returns whether it was clear. */
  add(i: number): boolean {
    if (!(Number.isInteger(i) && i >= 0 && i < this.size)) return false;
    const p = Math.floor(i / PAGE_BITS);
    let page = this.pages.get(p);
    if (!page) {
      page = new Uint8Array(PAGE_BITS / 8);
      this.pages.set(p, page);
    }
    const at = i % PAGE_BITS;
    const mask = 1 << (at & 7);
    if (page[at >>> 3]! & mask) return false;
    page[at >>> 3]! |= mask;
    this.n++;
    return true;
  }

  /** Clears bit i; returns whether it was set. A page stays allocated until clearAll. */
  delete(i: number): boolean {
    if (!this.has(i)) return false;
    const page = this.pages.get(Math.floor(i / PAGE_BITS))!;
    const at = i % PAGE_BITS;
    page[at >>> 3]! &= ~(1 << (at & 7));
    this.n--;
    return true;
  }

  clearAll(): void {
    this.pages.clear();
    this.n = 0;
  }
}
