/** A fixed-size bit set over block numbers, with a population count kept current. */
export class Bitmap {
  readonly bits: Uint8Array;
  private ones = 0;

  constructor(readonly size: number, fill = false) {
    this.bits = new Uint8Array(Math.ceil(size / 8));
    if (fill) this.setAll();
  }

  static from(size: number, bytes: Uint8Array): Bitmap {
    const b = new Bitmap(size);
    b.bits.set(bytes.subarray(0, b.bits.length));
    // Bits past `size` in the last byte are ignored.
    const tail = size % 8;
    if (tail) b.bits[b.bits.length - 1]! &= (1 << tail) - 1;
    let n = 0;
    for (const x of b.bits) n += POP[x]!;
    b.ones = n;
    return b;
  }

  get count(): number {
    return this.ones;
  }

  get(i: number): boolean {
    return (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  /** Sets bit i; returns true if it was clear. */
  set(i: number): boolean {
    const m = 1 << (i & 7);
    const byte = this.bits[i >> 3]!;
    if (byte & m) return false;
    this.bits[i >> 3] = byte | m;
    this.ones++;
    return true;
  }

  /** Clears bit i; returns true if it was set. */
  clear(i: number): boolean {
    const m = 1 << (i & 7);
    const byte = this.bits[i >> 3]!;
    if (!(byte & m)) return false;
    this.bits[i >> 3] = byte & ~m;
    this.ones--;
    return true;
  }

  /** Sets bits [first, first + count), whole bytes at a time. */
  setRange(first: number, count: number): void {
    this.fillRange(first, count, true);
  }

  setAll(): void {
    this.bits.fill(0xff);
    const tail = this.size % 8;
    if (tail) this.bits[this.bits.length - 1] = (1 << tail) - 1;
    this.ones = this.size;
  }

  clearAll(): void {
    this.bits.fill(0);
    this.ones = 0;
  }

  /** Next set bit at or after `from` and before `end` (default: the size), or -1. Skips empty bytes quickly. */
  nextSet(from: number, end = this.size): number {
    for (let i = from; i < end; ) {
      const byte = this.bits[i >> 3]!;
      if (byte === 0) {
        i = ((i >> 3) + 1) << 3;
        continue;
      }
      if (byte & (1 << (i & 7))) return i;
      i++;
    }
    return -1;
  }

  /** Next clear bit at or after `from` and before `end` (default: the size), or `end`. Skips full bytes quickly. */
  nextClear(from: number, end = this.size): number {
    for (let i = from; i < end; ) {
      const byte = this.bits[i >> 3]!;
      if (byte === 0xff) {
        i = ((i >> 3) + 1) << 3;
        continue;
      }
      if (!(byte & (1 << (i & 7)))) return i;
      i++;
    }
    return end;
  }

  /** Clears bits [first, first + count), whole bytes at a time. */
  clearRange(first: number, count: number): void {
    this.fillRange(first, count, false);
  }

  private put(i: number, value: boolean): void {
    if (value) this.set(i);
    else this.clear(i);
  }

  /** Sets or clears bits [first, first + count): bit by bit up to a byte boundary, then whole bytes. */
  private fillRange(first: number, count: number, value: boolean): void {
    const end = Math.min(this.size, first + count);
    const full = value ? 0xff : 0;
    let i = first;
    for (; i < end && (i & 7) !== 0; i++) this.put(i, value);
    for (; i + 8 <= end; i += 8) {
      const byte = this.bits[i >> 3]!;
      if (byte !== full) {
        this.ones += value ? 8 - POP[byte]! : -POP[byte]!;
        this.bits[i >> 3] = full;
      }
    }
    for (; i < end; i++) this.put(i, value);
  }

  /** Sets bits [first, first + count) from `bits` (bit i of `bits` is bit first + i here). */
  setSpan(first: number, count: number, bits: Uint8Array): void {
    for (let i = 0; i < count; ) {
      const byte = bits[i >> 3]!;
      if (byte === 0 && (i & 7) === 0) {
        i += 8;
        continue;
      }
      if (byte & (1 << (i & 7))) this.set(first + i);
      i++;
    }
  }

  *setBits(): Generator<number> {
    for (let i = this.nextSet(0); i >= 0; i = this.nextSet(i + 1)) yield i;
  }

  /** Takes the bits of another bitmap of the same size. */
  assign(other: Bitmap): void {
    this.bits.set(other.bits);
    this.ones = other.count;
  }

  clone(): Bitmap {
    return Bitmap.from(this.size, this.bits);
  }
}

const POP = new Uint8Array(256);
for (let i = 0; i < 256; i++) POP[i] = (i & 1) + POP[i >> 1]!;
