// guest_slowdown from a paired control run: the same requests without a
// migration, not the warm-up's different mix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../../src/sim/simulate.ts';
import { controlResponseMs } from '../../src/sim/control-run.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';
import type { WorkloadRequest } from '../../src/workload/generator.ts';

const MiB = 2 ** 20;

/** Large reads during the warm-up, then a burst of small ones: the mix changes when the migration starts. */
function burstAfterWarmup(): { next(): WorkloadRequest | undefined } {
  let i = 0;
  return {
    next() {
      const k = i++;
      if (k < 20) return { atMs: k * 100, op: 'read', offset: (k % 8) * MiB, length: MiB, tag: 0, dup: false, seq: false };
      if (k < 2020) return { atMs: 2500 + (k - 20) * 2, op: 'read', offset: ((k * 7919) % 4096) * 4096, length: 4096, tag: 0, dup: false, seq: false };
      return undefined;
    },
  };
}

test('the control run measures the same window without a migration (the device model alone)', async () => {
  const mean = await controlResponseMs({ image: syntheticImage(16 * MiB, 65536, 1), requests: burstAfterWarmup(), window: { fromMs: 2000, toMs: 8000 } });
  // 4 KiB reads, 2 ms apart, never queued: 0.1 ms + 0.01 ms per 4 KiB each.
  assert.ok(mean !== null && Math.abs(mean - 0.11) < 1e-6, String(mean));
});

test('guest_slowdown compares the migration window with the same requests in the control run', async () => {
  const image = syntheticImage(16 * MiB, 65536, 1);
  const r = await simulate({ image, algorithm: 'postcopy', bandwidthBps: 50e6, rttMs: 20, requests: burstAfterWarmup(), controlRequests: burstAfterWarmup(), warmupMs: 2000 });
  const g = r.guest;
  assert.ok(g.response_control_ms !== null && Math.abs(g.response_control_ms - 0.11) < 1e-6);
  assert.equal(g.guest_slowdown, g.response_during_ms! / g.response_control_ms);
  // Post-copy misses cost round trips: slower than the control, whatever the warm-up's (larger) requests took.
  assert.ok(g.guest_slowdown > 1, String(g.guest_slowdown));
  assert.ok(g.response_before_ms! > g.response_control_ms, 'the warm-up mix differs: it would have been the wrong baseline');
  const none = await simulate({ image, algorithm: 'postcopy', bandwidthBps: 50e6, rttMs: 20, requests: burstAfterWarmup(), warmupMs: 2000 });
  assert.equal(none.guest.guest_slowdown, null, 'no control run, no slowdown');
});
