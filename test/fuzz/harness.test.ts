// The fuzz harness must catch what it claims to: a crash, a hang, a leak,
// and must name the input to replay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, FuzzFailure } from './harness.ts';
import { inputRng, mutate } from './mutate.ts';

const cfg = { seed: 9, inputs: 200, concurrency: 4, perInputMs: 100, maxHeapGrowthBytes: 8 << 20 };

test('a throwing input fails the run with its seed and index', async () => {
  await assert.rejects(fuzz(cfg, 't', (i) => { if (i === 57) throw new TypeError('boom'); return 'ok'; }), (e: unknown) => e instanceof FuzzFailure && /FLIMCD_FUZZ_SEED=9 FLIMCD_FUZZ_INDEX=57/.test(e.message) && /boom/.test(e.message));
});

test('an input that never settles is a hang', async () => {
  await assert.rejects(fuzz(cfg, 't', (i) => (i === 3 ? new Promise<string>(() => {}) : 'ok')), /hang: input did not settle within 100 ms/);
});

// (An uncaught exception also fails the test through node:test's own handler, which sees it first.)

test('memory kept across inputs is a leak', async () => {
  const kept: Buffer[] = [];
  await assert.rejects(fuzz({ ...cfg, inputs: 400 }, 't', () => { kept.push(Buffer.alloc(64 * 1024, 1)); return 'ok'; }), /grew by .* MiB/);
  kept.length = 0;
});

test('a clean run tallies outcomes; inputs are a pure function of seed and index', async () => {
  const r = await fuzz(cfg, 't', (i) => (i % 2 ? 'odd' : 'even'));
  assert.deepEqual(r.outcomes, { odd: 100, even: 100 });
  const a = mutate(Buffer.from('hello fuzzer'), inputRng(3, 42));
  const b = mutate(Buffer.from('hello fuzzer'), inputRng(3, 42));
  assert.ok(a.equals(b));
  assert.ok(!mutate(Buffer.from('hello fuzzer'), inputRng(3, 43)).equals(a) || !mutate(Buffer.from('hello fuzzer'), inputRng(4, 42)).equals(a));
});
