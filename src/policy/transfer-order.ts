/**
 * Hot-area ordering of background transfer (design.md phases 2 and 4), as a
 * pure decision over a heat snapshot. An order names the areas to visit
 * before and after the rest; everything else goes in block order between
 * them, so an image with no heat is transferred exactly as without ordering.
 *
 * - Pre-copy: cold areas first, write-hot areas last, coolest of them first:
 *   a block sent early from a write-hot area would most likely be dirtied
 *   again and sent twice.
 * - Post-copy push: read-hot areas first, hottest first: a block pushed before
 *   the VM reads it at the target is a miss avoided. Ties go to write heat
 *   (a partial write at the target has to fetch too), then to block order.
 */
import type { AreaHeat } from './heat-map.ts';

export interface AreaOrder {
  /** Areas to visit before the block-order middle, in this order. */
  first: number[];
  /** Areas to visit after it, in this order. */
  last: number[];
}

export const BLOCK_ORDER: AreaOrder = { first: [], last: [] };

/** Heat below this counts as none (decayed leftovers of long-past I/O). */
const EPS = 1e-6;

export function precopyOrder(heat: readonly AreaHeat[]): AreaOrder {
  const last = heat.filter((h) => h.writes > EPS).sort((a, b) => a.writes - b.writes || a.area - b.area).map((h) => h.area);
  return { first: [], last };
}

export function pushOrder(heat: readonly AreaHeat[]): AreaOrder {
  const first = heat
    .filter((h) => h.reads > EPS || h.writes > EPS)
    .sort((a, b) => b.reads - a.reads || b.writes - a.writes || a.area - b.area)
    .map((h) => h.area);
  return { first, last: [] };
}
