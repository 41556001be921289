/** xorshift128+ style 32-bit generator: fast, seedable, reproducible across runs. Not for crypto. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 to spread a small seed over the state
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next() || 1;
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = this.a ^ (this.a << 11);
    this.a = this.b;
    this.b = this.c;
    this.c = this.d;
    this.d = (this.d ^ (this.d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return this.d;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  fill(buf: Uint8Array): void {
    const words = Math.floor(buf.length / 4);
    if (buf.byteOffset % 4 === 0) {
      const u = new Uint32Array(buf.buffer, buf.byteOffset, words);
      for (let i = 0; i < words; i++) u[i] = this.u32();
      for (let i = words * 4; i < buf.length; i++) buf[i] = this.u32() & 0xff;
      return;
    }
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < words; i++) view.setUint32(i * 4, this.u32(), true);
    for (let i = words * 4; i < buf.length; i++) buf[i] = this.u32() & 0xff;
  }
}
