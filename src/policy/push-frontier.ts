/**
 * The target's picture of the source's read-hot-first push (docs/design.md phase
 * 4), so prefetch yields to it. Pure: heat snapshot and arrivals in, yes/no out.
 *
 * Every block travels in post-copy anyway, so a prefetch moves nothing extra
 * over the link: it only reorders. Fetching an area ahead of the push is worth
 * it only if that area is likelier to be read soon than what the push is
 * about to send, i.e. if its predicted reads per block (from its read heat:
 * the source's, plus what the target itself has seen since cut-over) beat the
 * score of the push's next step. An area the push has reached, or will reach
 * within `lookahead` steps (its data is about as near as a prefetch answer
 * would be), is never worth it.
 *
 * The plan is recomputed here from the heat handed over at cut-over with the
 * source's rule (transfer-order.ts pushPlan), and the frontier advances with
 * the blocks that arrive as PUSH.
 */
import { AREA_BLEND, pushPlan, type BlockHeat } from './transfer-order.ts';
import type { AreaHeat } from './heat-map.ts';

export class PushFrontier {
  private readonly areaRank = new Map<number, number>();
  private readonly blockRank = new Map<number, number>();
  /** Predicted reads per block of each step of the plan. */
  private readonly scoreAt: number[];
  /** Step the push is on: the furthest seen arriving (0 before any has). */
  private at = 0;

  constructor(
    areas: readonly AreaHeat[],
    blocks: readonly BlockHeat[],
    private readonly areaBlocks: number,
    readonly lookahead = 2,
    private readonly blend = AREA_BLEND,
  ) {
    const plan = pushPlan(areas, blocks, areaBlocks, blend);
    plan.forEach((it, i) => (it.block !== undefined ? this.blockRank.set(it.block, i) : this.areaRank.set(it.area, i)));
    this.scoreAt = plan.map((it) => it.score);
  }

  /** Block `block` arrived as part of the push. */
  onPushed(block: number): void {
    const r = this.blockRank.get(block) ?? this.areaRank.get(Math.floor(block / this.areaBlocks));
    if (r !== undefined && r > this.at) this.at = r;
  }

  /** Predicted reads per block of the push's next step (0 once past everything with read heat). */
  get frontierScore(): number {
    return this.scoreAt[this.at + 1] ?? 0;
  }

  /** The push has sent `area`'s remainder, is sending it, or will within `lookahead` more steps. */
  pushedSoon(area: number): boolean {
    const r = this.areaRank.get(area);
    return r !== undefined && r <= this.at + this.lookahead;
  }

  /** Fetching `area` (area read heat now `readsNow`) ahead of the push beats leaving it to the push. */
  worthPrefetching(area: number, readsNow: number): boolean {
    return !this.pushedSoon(area) && (this.blend * readsNow) / this.areaBlocks > this.frontierScore;
  }
}
