/**
 * Hot-area ordering of background transfer (docs/design.md phases 2 and 4), as a
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

/** Read heat of one block (the source's per-block map). */
export interface BlockHeat {
  block: number;
  reads: number;
}

/** One step of a push plan: a single block, or every block of an area not sent yet; `score`: predicted reads per block. */
export type PushItem = ({ block: number; area?: undefined } | { area: number; block?: undefined }) & { score: number };

/**
 * How much an area's mean read heat per block counts for each of its blocks,
 * against the block's own reads. Own reads tell hot files apart from cold
 * ones sharing an area; the area's mean carries the reads of blocks read
 * rarely (or not yet) by a workload that reads its hot areas evenly. Checked
 * with bench/postcopy-bound.ts: 2 keeps uniform-in-area workloads as good as
 * area order and brings most of the per-block gain on file-like ones.
 */
export const AREA_BLEND = 2;

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

/**
 * Post-copy push at block grain: blocks and areas by predicted read heat,
 * hottest first. A block read at the source scores its own reads plus
 * `blend` × its area's mean reads per block; the rest of an area scores the
 * latter alone. Areas only written come next (most written first), then
 * everything else in block order (the walk's job). Ties: block items first,
 * then the hotter area, then lower index. With no block heat this is exactly
 * pushOrder's hot part.
 */
export function pushPlan(areas: readonly AreaHeat[], blocks: readonly BlockHeat[], areaBlocks: number, blend = AREA_BLEND): PushItem[] {
  const byArea = new Map(areas.map((h) => [h.area, h]));
  const mean = (a: number) => (byArea.get(a)?.reads ?? 0) / areaBlocks;
  type Scored = { item: PushItem; score: number; areaReads: number; areaWrites: number; index: number; isBlock: number };
  const list: Scored[] = [];
  for (const h of areas) {
    if (h.reads > EPS) list.push({ item: { area: h.area, score: blend * mean(h.area) }, score: blend * mean(h.area), areaReads: h.reads, areaWrites: h.writes, index: h.area, isBlock: 0 });
  }
  for (const b of blocks) {
    if (!(b.reads > EPS)) continue;
    const a = Math.floor(b.block / areaBlocks);
    const h = byArea.get(a);
    list.push({ item: { block: b.block, score: b.reads + blend * mean(a) }, score: b.reads + blend * mean(a), areaReads: h?.reads ?? 0, areaWrites: h?.writes ?? 0, index: b.block, isBlock: 1 });
  }
  list.sort((x, y) => y.score - x.score || y.isBlock - x.isBlock || y.areaReads - x.areaReads || y.areaWrites - x.areaWrites || x.index - y.index);
  const writeOnly = areas.filter((h) => !(h.reads > EPS) && h.writes > EPS).sort((x, y) => y.writes - x.writes || x.area - y.area);
  return [...list.map((s) => s.item), ...writeOnly.map((h) => ({ area: h.area, score: 0 }))];
}
