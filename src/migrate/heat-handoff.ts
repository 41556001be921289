import type { TrackingDisk } from '../block/filters/tracking.ts';
import type { Cutover } from '../wire/messages.ts';
import type { Bitmap } from '../util/bitmap.ts';
import { HeatMap, LONG_HALF_LIFE_MS } from '../policy/heat-map.ts';
import { BLOCK_ORDER, precopyOrder, pushPlan, type BlockHeat } from '../policy/transfer-order.ts';
import { walkAreas, walkPlan } from './area-walk.ts';

/** Most areas whose heat travels at cut-over (about 20 bytes each on the wire: ~80 KB). */
export const HANDOFF_AREAS = 1024;
/** Most areas whose co-access partners travel with it. */
export const HANDOFF_CO_AREAS = 256;
/** Most single blocks whose read heat travels (about 15 bytes each: ~15 KB). */
export const HANDOFF_BLOCKS = 1024;
/** Most block successor pairs that travel (about 14 bytes each: ~14 KB). */
export const HANDOFF_FOLLOWS = 1024;

export type Heat = NonNullable<Cutover['heat']>;

/** The source's blocks to send in hot order (or block order when off): pre-copy by area, the post-copy push by block and area read heat. */
export function orderedBlocks(bits: Bitmap, tracking: TrackingDisk, phase: 'precopy' | 'push', hotOrder: boolean, now: number, leadMs = 0): Generator<number> {
  if (!hotOrder) return walkAreas(bits, BLOCK_ORDER, tracking.areaBlocks);
  const heat = tracking.heat.all(now);
  if (phase === 'precopy') return walkAreas(bits, precopyOrder(heat), tracking.areaBlocks);
  // The readers in progress at the cut-over first, from just ahead of where they are (read-streams.ts), then a job
  // re-reading what it read before, in the order it first read it (read-order.ts), then the hot plan.
  const ahead = [...tracking.streams.continuations(now, { leadMs, blockCount: bits.size }), ...tracking.readOrder.continuation(now)].map((block) => ({ block, score: Infinity }));
  return walkPlan(bits, [...ahead, ...pushPlan(heat, blockHeat(tracking, now), tracking.areaBlocks)], tracking.areaBlocks);
}

/** Per-block read heat, less the block's whole-block writes: a block the VM writes whole before reading it needs no push (tracking.ts). */
function blockHeat(tracking: TrackingDisk, now: number): BlockHeat[] {
  return tracking.blockHeat.all(now).map((h) => ({ block: h.area, reads: Math.max(0, h.reads - h.writes) }));
}

const sig = (x: number) => Number(x.toPrecision(3));

/** The hottest part of the source's heat map and co-access pairs, bounded, for the CUTOVER message. */
export function heatForHandoff(tracking: TrackingDisk, now: number): Heat {
  const all = tracking.heat.all(now).filter((h) => h.reads > 1e-3 || h.writes > 1e-3);
  all.sort((a, b) => b.reads + b.writes - (a.reads + a.writes) || a.area - b.area);
  const top = all.slice(0, HANDOFF_AREAS);
  return {
    areaBlocks: tracking.areaBlocks,
    reads: top.filter((h) => h.reads > 1e-3).map((h) => [h.area, sig(h.reads)] as [number, number]),
    writes: top.filter((h) => h.writes > 1e-3).map((h) => [h.area, sig(h.writes)] as [number, number]),
    blocks: blockHeat(tracking, now)
      .filter((h) => h.reads > 1e-3)
      .sort((a, b) => b.reads - a.reads || a.block - b.block)
      .slice(0, HANDOFF_BLOCKS)
      .map((h) => [h.block, sig(h.reads)] as [number, number]),
    co: tracking.coAccess.export(top.slice(0, HANDOFF_CO_AREAS).map((h) => h.area)),
    follows: tracking.successors.export(HANDOFF_FOLLOWS),
  };
}

/** The target's heat map seeded from the hand-off (heat as it stood at cut-over, decaying from `now`). */
export function heatFromHandoff(h: Heat | undefined, now: number, halfLifeMs?: number): { heat: HeatMap; co: Map<number, number[]>; areaBlocks: number | undefined; blocks: BlockHeat[]; follows: Map<number, number> } {
  // Two scales as at the source: the hand-off is seeded into the long one and lasts the post-copy (heat-map.ts seed).
  const heat = new HeatMap({ halfLifeMs, maxEntries: 4 * HANDOFF_AREAS, longHalfLifeMs: LONG_HALF_LIFE_MS });
  const co = new Map<number, number[]>();
  if (!h) return { heat, co, areaBlocks: undefined, blocks: [], follows: new Map() };
  const byArea = new Map<number, { area: number; reads: number; writes: number }>();
  for (const [area, r] of h.reads) byArea.set(area, { area, reads: r, writes: 0 });
  for (const [area, w] of h.writes ?? []) {
    const e = byArea.get(area) ?? { area, reads: 0, writes: 0 };
    e.writes = w;
    byArea.set(area, e);
  }
  heat.seed(byArea.values(), now);
  for (const [area, partners] of h.co ?? []) co.set(area, partners);
  return { heat, co, areaBlocks: h.areaBlocks, blocks: (h.blocks ?? []).map(([block, reads]) => ({ block, reads })), follows: new Map(h.follows ?? []) };
}
