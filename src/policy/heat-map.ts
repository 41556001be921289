/**
 * Decayed read and write counters per area (docs/design.md "heat"), sparse and
 * bounded: only areas that saw I/O have an entry, and past `maxEntries` the
 * coldest entries are evicted in one batch (amortised O(1) per record), so a
 * terabyte image with a small hot set costs a few MB at most.
 *
 * Pure: no clock of its own, every call takes `now` (ms). Counters decay
 * exponentially with `halfLifeMs` and are brought up to date lazily when an
 * area is touched or read, so a record is O(1).
 *
 * Two time scales (issue 18, "heat that remembers"): with `longHalfLifeMs`
 * each entry also keeps counters that halve only every `longHalfLifeMs`
 * (default 1 h). A 60 s half-life forgets a periodic job's read set (a backup
 * every 10 minutes) long before the job runs again; the long counters keep
 * it. `reads()` and `writes()` report the sum of the short counter and the
 * long one scaled by halfLifeMs / longHalfLifeMs: both are then estimates of
 * the same thing (recent accesses per short half-life), so an area read
 * steadily scores about twice its short count on either scale alone, an area
 * read in a burst a minute ago scores mostly by the short term, and a job's
 * set read three times in the last half hour by the long term. Same memory
 * bound: two more numbers per entry.
 */

export interface HeatMapOptions {
  /** Counts halve every this many ms (default 60 s: the last minutes matter, not the last hour). */
  halfLifeMs?: number;
  /** Most areas kept (default 65 536, about 5 MB). */
  maxEntries?: number;
  /** A second, slow time scale (ms); undefined: one scale only (see the header). */
  longHalfLifeMs?: number;
}

/** The long time scale the agents use (tracking.ts, heat-handoff.ts): 1 h, so a job that runs every few minutes to an hour stays known. */
export const LONG_HALF_LIFE_MS = 3_600_000;

export interface AreaHeat {
  area: number;
  reads: number;
  writes: number;
}

interface Entry {
  r: number;
  w: number;
  /** The long time scale's counters (0 with one scale). */
  rl: number;
  wl: number;
  /** When r and w were last decayed (ms). */
  t: number;
}

export class HeatMap {
  readonly halfLifeMs: number;
  readonly maxEntries: number;
  readonly longHalfLifeMs: number | undefined;
  /** halfLifeMs / longHalfLifeMs: what one long-scale count is worth on the short scale (0 with one scale). */
  private readonly longScale: number;
  private readonly entries = new Map<number, Entry>();
  private evicted = 0;

  constructor(o: HeatMapOptions = {}) {
    this.halfLifeMs = o.halfLifeMs ?? 60_000;
    this.maxEntries = Math.max(1, o.maxEntries ?? 65_536);
    this.longHalfLifeMs = o.longHalfLifeMs !== undefined && o.longHalfLifeMs > this.halfLifeMs ? o.longHalfLifeMs : undefined;
    this.longScale = this.longHalfLifeMs ? this.halfLifeMs / this.longHalfLifeMs : 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Entries dropped so far to stay within maxEntries. */
  get evictions(): number {
    return this.evicted;
  }

  recordRead(area: number, now: number, amount = 1): void {
    const e = this.touch(area, now);
    e.r += amount;
    if (this.longScale) e.rl += amount;
    this.bound(now);
  }

  recordWrite(area: number, now: number, amount = 1): void {
    const e = this.touch(area, now);
    e.w += amount;
    if (this.longScale) e.wl += amount;
    this.bound(now);
  }

  reads(area: number, now: number): number {
    const e = this.entries.get(area);
    return e ? e.r * this.factor(now - e.t) + e.rl * this.longScale * this.longFactor(now - e.t) : 0;
  }

  writes(area: number, now: number): number {
    const e = this.entries.get(area);
    return e ? e.w * this.factor(now - e.t) + e.wl * this.longScale * this.longFactor(now - e.t) : 0;
  }

  /** Every area with its heat at `now` (both scales, as reads() and writes() report it), unordered. */
  all(now: number): AreaHeat[] {
    const out: AreaHeat[] = [];
    for (const [area, e] of this.entries) {
      const f = this.factor(now - e.t);
      const g = this.longScale * this.longFactor(now - e.t);
      out.push({ area, reads: e.r * f + e.rl * g, writes: e.w * f + e.wl * g });
    }
    return out;
  }

  /** The `limit` areas with the most read heat (ties: lower area first), hottest first. */
  hottestReads(now: number, limit: number): AreaHeat[] {
    return this.all(now)
      .filter((h) => h.reads > 0)
      .sort((a, b) => b.reads - a.reads || a.area - b.area)
      .slice(0, Math.max(0, limit));
  }

  /**
   * Replaces nothing: adds `reads`/`writes` as they stood at `now` (heat received from the source).
   * With two scales the seed goes into the long counters (reads() reports it as given), so what
   * the source remembered fades at the long scale, not within a minute.
   */
  seed(list: Iterable<AreaHeat>, now: number): void {
    for (const h of list) {
      const e = this.touch(h.area, now);
      if (this.longScale) {
        e.rl += Math.max(0, h.reads) / this.longScale;
        e.wl += Math.max(0, h.writes) / this.longScale;
      } else {
        e.r += Math.max(0, h.reads);
        e.w += Math.max(0, h.writes);
      }
    }
    this.bound(now);
  }

  private factor(ageMs: number): number {
    return ageMs <= 0 ? 1 : Math.pow(0.5, ageMs / this.halfLifeMs);
  }

  private longFactor(ageMs: number): number {
    return ageMs <= 0 || !this.longHalfLifeMs ? 1 : Math.pow(0.5, ageMs / this.longHalfLifeMs);
  }

  private touch(area: number, now: number): Entry {
    let e = this.entries.get(area);
    if (!e) {
      e = { r: 0, w: 0, rl: 0, wl: 0, t: now };
      this.entries.set(area, e);
    } else if (now > e.t) {
      const f = this.factor(now - e.t);
      const g = this.longFactor(now - e.t);
      e.r *= f;
      e.w *= f;
      e.rl *= g;
      e.wl *= g;
      e.t = now;
    }
    return e;
  }

  /** Over the cap: drop the coldest eighth (reads + writes at `now`), so eviction is rare. */
  private bound(now: number): void {
    if (this.entries.size <= this.maxEntries) return;
    const keep = Math.max(1, this.maxEntries - Math.ceil(this.maxEntries / 8));
    const ranked = this.all(now).sort((a, b) => a.reads + a.writes - (b.reads + b.writes) || b.area - a.area);
    for (let i = 0; i < ranked.length - keep; i++) {
      this.entries.delete(ranked[i]!.area);
      this.evicted++;
    }
  }
}
