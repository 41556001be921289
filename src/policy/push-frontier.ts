/**
 * The target's picture of the source's read-hot-first push (design.md phase
 * 4), so prefetch yields to it. Pure: heat snapshot and arrivals in, yes/no out.
 *
 * Every block travels in post-copy anyway, so a prefetch moves nothing extra
 * over the link: it only reorders. Fetching an area ahead of the push is worth
 * it only if that area is likelier to be read soon than the areas the push is
 * about to send, i.e. if its read heat (the source's, plus what the target
 * itself has seen since cut-over) is above the heat of the area at the push's
 * frontier. An area the push has reached, or will reach within `lookahead`
 * areas (its data is about as near as a prefetch answer would be), is never
 * worth it.
 *
 * The push order is recomputed here from the heat handed over at cut-over
 * with the same rule the source uses (transfer-order.ts pushOrder), and the
 * frontier advances with the areas of blocks that arrive as PUSH.
 */
import { pushOrder } from './transfer-order.ts';
import type { AreaHeat } from './heat-map.ts';

export class PushFrontier {
  private readonly rank = new Map<number, number>();
  /** Source read heat of each rank's area, hottest first. */
  private readonly heatAt: number[];
  /** Rank of the area the push is sending now: the highest seen arriving by push (0 before any has). */
  private at = 0;

  /** `heat`: the source's heat at cut-over; `lookahead`: areas ahead of the frontier counted as "pushed soon". */
  constructor(heat: readonly AreaHeat[], readonly lookahead = 2) {
    const reads = new Map(heat.map((h) => [h.area, h.reads]));
    const order = pushOrder(heat).first;
    order.forEach((a, i) => this.rank.set(a, i));
    this.heatAt = order.map((a) => reads.get(a) ?? 0);
  }

  /** A block of `area` arrived as part of the push. */
  onPushed(area: number): void {
    const r = this.rank.get(area);
    if (r !== undefined && r > this.at) this.at = r;
  }

  /** Source read heat of the area the push sends after the current one (0 once past every area with heat). */
  get frontierHeat(): number {
    return this.heatAt[this.at + 1] ?? 0;
  }

  /** The push has sent `area` already, is sending it, or will within `lookahead` more areas. */
  pushedSoon(area: number): boolean {
    const r = this.rank.get(area);
    return r !== undefined && r <= this.at + this.lookahead;
  }

  /** Fetching `area` (read heat now `readsNow`) ahead of the push beats leaving it to the push. */
  worthPrefetching(area: number, readsNow: number): boolean {
    return !this.pushedSoon(area) && readsNow > this.frontierHeat;
  }
}
