// The arena behind the simulator's link and codec model: every buffer has its
// full length, and the carried bytes of live buffers never overlap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OverlapArena } from '../../src/sim/overlap-arena.ts';

test('carried bytes stay private while fillers overlap; long or fully carried buffers get their own memory', () => {
  const arena = new OverlapArena(65536 + 64, 4096);
  const bufs = Array.from({ length: 1000 }, (_, i) => {
    const b = arena.take(65536 + (i % 3), 24);
    b.writeUInt32LE(i, 0);
    b.writeUInt32LE(~i >>> 0, 20);
    return b;
  });
  bufs.forEach((b, i) => {
    assert.equal(b.length, 65536 + (i % 3));
    assert.equal(b.readUInt32LE(0), i);
    assert.equal(b.readUInt32LE(20), ~i >>> 0);
  });
  const shared = new Set(bufs.map((b) => b.buffer));
  assert.ok(shared.size < 20, `${shared.size} slabs for 1000 buffers of 64 KiB`);
  assert.equal(arena.take(70_000, 24).byteOffset % 8, 0);
  const own = arena.take(200_000, 24);
  assert.equal(own.length, 200_000);
  const full = arena.take(100, 100);
  full.fill(7);
  assert.equal(bufs[999]!.readUInt32LE(0), 999);
});
