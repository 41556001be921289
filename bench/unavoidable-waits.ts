/**
 * What no history-based post-copy order can avoid (bench:postcopy's
 * `unavoidable_rate`, issue 18): the accesses in a post-copy window to blocks
 * nothing before them names.
 *
 * A push order or prefetch that knows only the past can get a block to the
 * target ahead of the VM's first access to it only if something points at
 * it. This counts a block's first access in the window (a read, or a write
 * that covers it only in part: that write waits for the old content too)
 * as unavoidable when none of these holds:
 * - the VM read or wrote the block before the cut-over (the source saw it:
 *   heat, history);
 * - a sequential run predicts it: the request begins at most two blocks
 *   after a block accessed before it (read-streams.ts' gap; read-ahead
 *   follows it), and every block of such a request counts as predicted
 *   (a successor pair, block-successors.ts, names only blocks the VM read
 *   before the cut-over: those count under the first case);
 * - it is a hole in the image (`isHole`): the target gets holes as zero
 *   ranges and never waits for them.
 * Every predicate is as generous as the history allows, so the count is a
 * floor for orders that use the history. It is not a floor against luck: an
 * order that sends unknown blocks too (plain block order does) may land one
 * of them in time, so a point's plain waits can be fewer than this count.
 * A request that does not continue a run and reads several unknown blocks
 * counts each of them: they are asked for at the same instant.
 *
 * A second floor, of another kind (`linkBound`): the link's. Given
 * `blocksPerMs`, even an order that knew the future delivers at most that
 * many blocks a millisecond, so when the VM first touches blocks faster than
 * that, at least max over t of (first accesses by t) - (blocks the link
 * carried by t) of them wait, whatever is pushed. Taken at the recorded
 * times: a VM that waits is slowed in the simulator, so this is the floor
 * for a guest that would not slow down.
 *
 * Pure: records in, counts out; memory O(blocks touched).
 */
import type { FiuRecord } from '../src/workload/fiu-trace.ts';

export interface UnavoidableOptions {
  blockSize: number;
  /** Post-copy window, ms from the trace's first record: [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  /** The image's holes (block numbers): never waited for. */
  isHole?: (block: number) => boolean;
  /** The link's rate in blocks a millisecond, for `linkBound` (0 when absent). */
  blocksPerMs?: number;
}

export interface UnavoidableCounts {
  /** Block accesses in the window that need the block's old content (reads, partial writes), repeats included. */
  accesses: number;
  /** First such access to each block in the window (what could wait at all). */
  firstAccesses: number;
  /** Of those: to blocks seen before the cut-over, to holes, predicted by a run. */
  seen: number;
  holes: number;
  sequential: number;
  /** First accesses nothing names (see the header). */
  unavoidable: number;
  /** First accesses (holes left out) that even a clairvoyant push cannot have landed in time at the link's rate (see the header). */
  linkBound: number;
}

export function countUnavoidable(records: Iterable<FiuRecord>, o: UnavoidableOptions): UnavoidableCounts {
  const bs = o.blockSize;
  const c: UnavoidableCounts = { accesses: 0, firstAccesses: 0, seen: 0, holes: 0, sequential: 0, unavoidable: 0, linkBound: 0 };
  let needed = 0;
  const before = new Set<number>();
  const inWindow = new Set<number>();
  let t0: bigint | undefined;
  let lastMs = 0;
  for (const r of records) {
    t0 ??= r.tsNs;
    // As FiuReplay: time from the first record, never backwards.
    const at = Math.max(lastMs, Number(r.tsNs - t0) / 1e6);
    lastMs = at;
    if (at >= o.toMs) break;
    const offset = r.lba * 512;
    const end = offset + r.sectors * 512;
    if (end <= offset) continue;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const read = r.op === 'read';
    if (at < o.fromMs) {
      for (let b = first; b <= last; b++) before.add(b);
      continue;
    }
    const touched = (b: number) => before.has(b) || inWindow.has(b);
    const runContinues = touched(first - 1) || touched(first - 2);
    // The blocks of this request that need their old content: all of a read, a write's partial ends.
    const need: number[] = [];
    for (let b = first; b <= last; b++) {
      const whole = !read && b * bs >= offset && (b + 1) * bs <= end;
      if (!whole) need.push(b);
    }
    c.accesses += need.length;
    for (const b of need) {
      if (inWindow.has(b)) continue;
      c.firstAccesses++;
      if (before.has(b)) c.seen++;
      else if (o.isHole?.(b)) c.holes++;
      else if (runContinues) c.sequential++;
      else c.unavoidable++;
      if (!o.isHole?.(b)) needed++;
    }
    if (o.blocksPerMs) c.linkBound = Math.max(c.linkBound, needed - Math.floor(o.blocksPerMs * (at - o.fromMs)));
    for (let b = first; b <= last; b++) inWindow.add(b);
  }
  return c;
}
