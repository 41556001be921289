/**
 * "Distinct bytes newly dirtied per second", the one number the workload
 * profiles are pinned to (docs/design.md, Workloads), measured one way everywhere:
 * in the profile calibration, in tests replaying the generator, and in the
 * executor on real completions.
 *
 * Definition. Time is cut into windows of `windowMs` (1 s by default). At the
 * start of each window every block counts as clean; a write dirties each
 * tracking block (64 KiB by default) it touches, and a block already dirtied
 * in the same window dirties nothing new. The rate is the number of distinct
 * blocks dirtied per window, times the block size, averaged over whole windows.
 *
 * Why per window and not since the start: a migration resends a block once per
 * dirtying between two sends, so what it must keep up with is the distinct
 * set dirtied between sends. Rewrites of a hot block within a window cost the
 * link nothing extra, across windows they cost a resend. A 1 s window makes the
 * rate a rate (bytes per second) and matches the last pre-copy rounds, the
 * ones that decide convergence. Over longer windows the same workload dirties
 * less per second (hot blocks are rewritten); `rateAt` lets reports state that.
 */
export class DirtyMeter {
  readonly blockSize: number;
  readonly windowMs: number;
  private readonly stamp: Uint32Array;
  /** Newly dirtied blocks per window index. */
  private readonly perWindow: number[] = [];

  constructor(imageBytes: number, opts: { blockSize?: number; windowMs?: number } = {}) {
    this.blockSize = opts.blockSize ?? 65536;
    this.windowMs = opts.windowMs ?? 1000;
    this.stamp = new Uint32Array(Math.ceil(imageBytes / this.blockSize));
  }

  /** Records a write of [offset, offset + length) at time `atMs` (ms since the start of measurement). */
  write(atMs: number, offset: number, length: number): number {
    if (length <= 0 || atMs < 0) return 0;
    const w = Math.floor(atMs / this.windowMs);
    const mark = w + 1;
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((offset + length - 1) / this.blockSize);
    let fresh = 0;
    for (let b = first; b <= last; b++) {
      if (this.stamp[b] !== mark) {
        this.stamp[b] = mark;
        fresh++;
      }
    }
    while (this.perWindow.length <= w) this.perWindow.push(0);
    this.perWindow[w]! += fresh;
    return fresh * this.blockSize;
  }

  /** Newly dirtied bytes in window `w`. */
  windowBytes(w: number): number {
    return (this.perWindow[w] ?? 0) * this.blockSize;
  }

  /** Windows seen so far (the last may be partial). */
  get windows(): number {
    return this.perWindow.length;
  }

  /** Mean newly dirtied bytes per second over windows [0, wholeWindows). */
  bytesPerSecond(wholeWindows = this.perWindow.length): number {
    if (wholeWindows <= 0) return 0;
    let sum = 0;
    for (let i = 0; i < wholeWindows; i++) sum += this.perWindow[i] ?? 0;
    return (sum * this.blockSize) / wholeWindows / (this.windowMs / 1000);
  }
}

/** Distinct-dirtying rate of a list of writes for a given window (for reports on longer windows). */
export function dirtyRate(
  writes: Iterable<{ atMs: number; offset: number; length: number }>,
  imageBytes: number,
  durationMs: number,
  opts: { blockSize?: number; windowMs?: number } = {},
): number {
  const m = new DirtyMeter(imageBytes, opts);
  for (const w of writes) if (w.atMs < durationMs) m.write(w.atMs, w.offset, w.length);
  return m.bytesPerSecond(Math.floor(durationMs / m.windowMs));
}
