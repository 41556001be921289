/**
 * When `flimcd vm migrate` starts QEMU's RAM migration.
 *
 * - `converged` (the default): once the disks' pre-copy has converged (first
 *   pass done, dirty set small). The RAM and the disks take turns on the link:
 *   the safe choice when they share it.
 * - `overlap`: as soon as the disks' pre-copy is expected to end within the
 *   RAM migration's own time, so that both end together. For a RAM stream on
 *   its own link (or a disk pre-copy that is not link-bound) the switch-over
 *   comes a whole RAM migration sooner. Should the RAM be ready first, the
 *   cut-over happens in QEMU's pause all the same and what the disks still
 *   lack moves in post-copy: the VM is never held waiting for a disk.
 *
 * The RAM migration's time is estimated as the guest's RAM over the RAM
 * bandwidth QEMU is given (`max-bandwidth`): pages that compress or are zero
 * make it shorter, so the RAM starts early rather than late.
 */
import type { QmpClient } from './qmp.ts';
import { finiteOrNull, type DiskStatus } from './disk-set.ts';

export const RAM_START_MODES = ['converged', 'overlap'] as const;
export type RamStart = (typeof RAM_START_MODES)[number];

/** Seconds QEMU needs to send the guest's RAM once at `max-bandwidth` (`ramMaxBandwidth`, else QEMU's current setting). */
export async function ramSecondsEstimate(qmp: QmpClient, ramMaxBandwidth: number | undefined): Promise<number | null> {
  const mem = await qmp.execute<{ 'base-memory'?: number; 'plugged-memory'?: number }>('query-memory-size-summary');
  const bytes = (finiteOrNull(mem['base-memory']) ?? 0) + (finiteOrNull(mem['plugged-memory']) ?? 0);
  const rate = ramMaxBandwidth ?? finiteOrNull((await qmp.execute<Record<string, unknown>>('query-migrate-parameters'))['max-bandwidth']);
  if (!bytes || !rate || rate <= 0) return null;
  return bytes / rate;
}

/**
 * Seconds until the disks' pre-copy ends, from the pace at which their
 * remaining blocks went down since the first look (all disks together: they
 * share the link). Blocks, not wire bytes: blocks the target has, zeros and
 * compression make a block cost far less than its size on the link.
 */
export class PrecopyPace {
  private first: { atMs: number; remaining: number } | undefined;

  /** null while the pace is unknown (under half a second seen, nothing done yet) or a disk is past pre-copy. */
  secondsLeft(nowMs: number, all: readonly DiskStatus[]): number | null {
    let remaining = 0;
    for (const d of all) {
      const r = finiteOrNull(d.status.remainingBlocks);
      if (d.status.phase !== 'precopy' || r === null) return null;
      remaining += r;
    }
    if (!all.length) return null;
    if (remaining === 0) return 0;
    if (!this.first) {
      this.first = { atMs: nowMs, remaining };
      return null;
    }
    const seconds = (nowMs - this.first.atMs) / 1000;
    const done = this.first.remaining - remaining;
    if (seconds < 0.5 || done <= 0) return null;
    return remaining / (done / seconds);
  }
}

/** Whether `overlap` starts the RAM migration now: the pre-copy's end is due within the RAM migration's time. */
export function overlapStartsRam(secondsLeft: number | null, ramSeconds: number | null): boolean {
  return secondsLeft !== null && ramSeconds !== null && secondsLeft <= ramSeconds;
}
