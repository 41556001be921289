/**
 * Tells when QEMU's RAM migration is not converging: after a few dirty-sync
 * passes the guest still dirties memory about as fast as QEMU sends it, so the
 * switch-over never comes (the operator raises --ram-bandwidth, or
 * --ram-timeout rolls back). Reads query-migrate's `ram` figures.
 */
export interface RamFigures {
  'dirty-pages-rate'?: number;
  'page-size'?: number;
  mbps?: number;
  'dirty-sync-count'?: number;
  remaining?: number;
}

/** Passes before a verdict: the first ones copy the whole RAM. */
const MIN_SYNCS = 4;

export interface RamConvergenceVerdict {
  dirtyBytesPerSecond: number;
  sentBytesPerSecond: number;
  syncs: number;
  remainingBytes: number;
}

/** Says once, when the dirty rate reaches the send rate after MIN_SYNCS passes. */
export class RamConvergenceWatch {
  private warned = false;

  /** A verdict the first time the migration looks stuck, else undefined. */
  observe(ram: RamFigures | undefined): RamConvergenceVerdict | undefined {
    if (this.warned || !ram) return undefined;
    const syncs = ram['dirty-sync-count'] ?? 0;
    const dirty = (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096);
    const sent = ((ram.mbps ?? 0) * 1e6) / 8;
    if (syncs < MIN_SYNCS || dirty <= 0 || dirty < 0.9 * sent) return undefined;
    this.warned = true;
    return { dirtyBytesPerSecond: Math.round(dirty), sentBytesPerSecond: Math.round(sent), syncs, remainingBytes: ram.remaining ?? 0 };
  }
}
