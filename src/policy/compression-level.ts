/**
 * Which zstd level keeps the link full without starving the CPU.
 *
 * The compressor must produce wire bytes at least as fast as the link drains
 * them, using at most `cpuShare` of one core (the same thread serves the VM's
 * I/O). Input speed at level L is `speed(L)`; a level is affordable when
 * speed(L) * cpuShare >= linkBytesPerSec * ratio (raw bytes needed per second
 * to fill the link). The highest affordable level wins: a slower link buys a
 * better ratio. Speeds are estimated from the measured speed of the level in
 * use, scaled by zstd 1.5's relative cost per level on 64 KiB blocks of a
 * mixed VM image (one core: L1 248 MB/s, L3 232, L6 112, L9 56); only the
 * ratios are used, so a faster or slower machine shifts all levels alike.
 */
export const LEVELS = [1, 3, 6, 9] as const;
const RELATIVE_SPEED: Record<number, number> = { 1: 1, 3: 0.93, 6: 0.45, 9: 0.23 };

export interface LevelInput {
  linkBytesPerSec: number;
  /** Measured input speed (bytes/s) at `currentLevel`, or undefined before any sample. */
  measuredBytesPerSec: number | undefined;
  currentLevel: number;
  /** Measured raw/wire ratio (>= 1). */
  ratio: number;
  /** Share of one core compression may use. */
  cpuShare?: number;
}

export function chooseCompressionLevel(i: LevelInput): number {
  const share = i.cpuShare ?? 0.5;
  const rel = RELATIVE_SPEED[i.currentLevel] ?? 1;
  // Before any measurement assume level 1 runs at 200 MB/s.
  const l1Speed = i.measuredBytesPerSec !== undefined ? i.measuredBytesPerSec / rel : 200e6;
  const need = i.linkBytesPerSec * Math.max(1, i.ratio);
  let best: number = LEVELS[0];
  for (const l of LEVELS) if (l1Speed * RELATIVE_SPEED[l]! * share >= need) best = l;
  return best;
}
