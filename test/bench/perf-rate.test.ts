// bench:perf's goodput reads the WAN emulator's byte counter between 10 % and 90 % of the bytes,
// so start-up and the cut-over's tail do not count against the link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logLine, steadyRateBps, type ByteSample } from '../../bench/perf/agents.ts';

test('the steady rate leaves out a slow start and an idle tail', () => {
  const samples: ByteSample[] = [];
  // 1 s idle (handshake), then 12.5 MB/s (100 Mbit/s) for 8 s, then 2 s idle (verify).
  for (let ms = 0; ms <= 11_000; ms += 100) {
    const busy = Math.min(Math.max(ms - 1000, 0), 8000);
    samples.push({ atMs: ms, forwardBytes: busy * 12_500 });
  }
  const r = steadyRateBps(samples);
  assert.ok(Math.abs(r - 100e6) < 1e6, `rate ${r}`);
  assert.ok(Number.isNaN(steadyRateBps([])), 'no samples, no rate');
});

test('logLine finds the agent log line by its message, not by a field that mentions it', () => {
  const log = ['not json', JSON.stringify({ msg: 'other', note: 'cut-over: serving the VM' }), JSON.stringify({ msg: 'cut-over: serving the VM at the target', serveMs: 3 })].join('\n');
  assert.equal(logLine(log, 'cut-over: serving the VM')?.serveMs, 3);
  assert.equal(logLine(log, 'nothing like it'), undefined);
});
