import type { Bitmap } from '../util/bitmap.ts';
import type { AreaOrder, PushItem } from '../policy/transfer-order.ts';

/**
 * The set blocks of a live bitmap in an area order: the `first` areas, then
 * every other area in block order, then the `last` areas. The bitmap is read
 * as the walk goes (bits set behind the walk wait for the next one), so the
 * caller still claims each block with `clear()`. O(blocks + areas listed).
 */
export function* walkAreas(bits: Bitmap, order: AreaOrder, areaBlocks: number): Generator<number> {
  const areas = Math.ceil(bits.size / areaBlocks);
  const listed = new Set<number>();
  for (const a of [...order.first, ...order.last]) if (a >= 0 && a < areas) listed.add(a);
  function* area(a: number): Generator<number> {
    const end = Math.min(bits.size, (a + 1) * areaBlocks);
    for (let b = a * areaBlocks; b < end; b++) if (bits.get(b)) yield b;
  }
  const done = new Set<number>();
  for (const a of order.first) {
    if (!listed.has(a) || done.has(a)) continue;
    done.add(a);
    yield* area(a);
  }
  for (let b = bits.nextSet(0); b >= 0; ) {
    const a = Math.floor(b / areaBlocks);
    if (listed.has(a)) {
      b = bits.nextSet((a + 1) * areaBlocks);
      continue;
    }
    yield b;
    b = bits.nextSet(b + 1);
  }
  for (const a of order.last) {
    if (!listed.has(a) || done.has(a)) continue;
    done.add(a);
    yield* area(a);
  }
}

/**
 * The set blocks of a live bitmap in plan order (transfer-order.ts pushPlan):
 * each item's block, or an area's set blocks, then every block still set in
 * block order. As walkAreas, the caller claims each block with `clear()`, so
 * a block an earlier item yielded is not yielded again. O(blocks + plan).
 */
export function* walkPlan(bits: Bitmap, plan: readonly PushItem[], areaBlocks: number): Generator<number> {
  for (const it of plan) {
    if (it.block !== undefined) {
      if (it.block >= 0 && it.block < bits.size && bits.get(it.block)) yield it.block;
      continue;
    }
    const end = Math.min(bits.size, (it.area + 1) * areaBlocks);
    for (let b = Math.max(0, it.area * areaBlocks); b < end; b++) if (bits.get(b)) yield b;
  }
  for (let b = bits.nextSet(0); b >= 0; b = bits.nextSet(b + 1)) yield b;
}
