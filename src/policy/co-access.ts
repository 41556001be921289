/**
 * Which areas are read together: for every area, the few areas most often
 * read shortly after (or before) it. A reader touching an area's partner is
 * the cue for co-access prefetch at the target (a file's metadata and its
 * data, an index and its table).
 *
 * Bounded and pure: each area keeps at most `maxPartners` partners, counted
 * with the Misra-Gries frequent-items rule (a newcomer to a full list
 * decrements everyone instead of entering), so one-off coincidences fade and
 * real pairs stay; at most `maxAreas` areas are kept, least recently updated
 * dropped first. Time comes in as `now` (ms).
 */

export interface CoAccessOptions {
  /** Two reads this close (ms) count as "together" (default 50). */
  windowMs?: number;
  /** How many recent distinct areas a new read is paired with (default 4). */
  recent?: number;
  maxPartners?: number;
  maxAreas?: number;
}

interface Partner {
  area: number;
  n: number;
}

export class CoAccess {
  private readonly windowMs: number;
  private readonly recentMax: number;
  private readonly maxPartners: number;
  private readonly maxAreas: number;
  private readonly recent: Array<{ area: number; t: number }> = [];
  private readonly links = new Map<number, Partner[]>();

  constructor(o: CoAccessOptions = {}) {
    this.windowMs = o.windowMs ?? 50;
    this.recentMax = Math.max(1, o.recent ?? 4);
    this.maxPartners = Math.max(1, o.maxPartners ?? 4);
    this.maxAreas = Math.max(1, o.maxAreas ?? 65_536);
  }

  get size(): number {
    return this.links.size;
  }

  /** A read touched `area` at `now`. */
  observe(area: number, now: number): void {
    const rec = this.recent;
    const at = rec.findIndex((r) => r.area === area);
    if (at >= 0) rec.splice(at, 1);
    for (const r of rec) {
      if (now - r.t > this.windowMs) continue;
      this.link(r.area, area);
      this.link(area, r.area);
    }
    rec.push({ area, t: now });
    if (rec.length > this.recentMax) rec.shift();
  }

  /** Partners of `area` seen at least `minCount` times (net of decrements), strongest first. */
  partners(area: number, minCount = 2): number[] {
    const list = this.links.get(area);
    if (!list) return [];
    return list.filter((p) => p.n >= minCount).sort((a, b) => b.n - a.n || a.area - b.area).map((p) => p.area);
  }

  /** Partner lists of the given areas (those with any), for the cut-over hand-off. */
  export(areas: Iterable<number>, minCount = 2): Array<[number, number[]]> {
    const out: Array<[number, number[]]> = [];
    for (const a of areas) {
      const p = this.partners(a, minCount);
      if (p.length) out.push([a, p]);
    }
    return out;
  }

  private link(from: number, to: number): void {
    let list = this.links.get(from);
    if (list) this.links.delete(from); // re-inserted below: Map order is recency of update
    else list = [];
    this.links.set(from, list);
    const p = list.find((x) => x.area === to);
    if (p) p.n++;
    else if (list.length < this.maxPartners) list.push({ area: to, n: 1 });
    else {
      for (const x of list) x.n--;
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.n <= 0) list.splice(i, 1);
    }
    if (this.links.size > this.maxAreas) this.links.delete(this.links.keys().next().value!);
  }
}
