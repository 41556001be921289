import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideCutover, DEFAULT_CUTOVER_CONFIG, type RoundState } from '../../src/policy/cutover.ts';

const MB = 1e6;
const base = (over: Partial<RoundState>): RoundState => ({
  algorithm: 'precopy', roundsDone: 1, remainingBytes: 100 * MB, history: [], linkBytesPerSec: 12.5 * MB, dirtyBytesPerSec: 1 * MB,
  config: DEFAULT_CUTOVER_CONFIG.precopy, ...over,
});

test('postcopy always cuts over at once', () => {
  assert.equal(decideCutover(base({ algorithm: 'postcopy', config: DEFAULT_CUTOVER_CONFIG.postcopy })).cutover, true);
});

test('precopy stops and copies once the rest fits the downtime budget', () => {
  assert.equal(decideCutover(base({ remainingBytes: 3 * MB })).cutover, true); // 240 ms at 12.5 MB/s
  assert.equal(decideCutover(base({ remainingBytes: 5 * MB, history: [50 * MB] })).cutover, false); // 400 ms, still shrinking
});

test("precopy's stop-and-copy counts the round trip and the writes that arrive before the hold", () => {
  // 3 MB is 240 ms at 12.5 MB/s: it fits 300 ms on a short link...
  assert.equal(decideCutover(base({ remainingBytes: 3 * MB, history: [50 * MB], rttMs: 5 })).cutover, true);
  // ...but not with a 100 ms round trip (340 ms + 1 MB/s × 100 ms of writes meanwhile = 348 ms).
  assert.equal(decideCutover(base({ remainingBytes: 3 * MB, history: [50 * MB], rttMs: 100 })).cutover, false);
  // 1 MB then fits: 100 + (1 + 0.1) MB / 12.5 MB/s = 188 ms.
  assert.equal(decideCutover(base({ remainingBytes: 1 * MB, history: [50 * MB], rttMs: 100 })).cutover, true);
});

test('precopy gives up on a dirty set that stopped shrinking, but not before stallRounds', () => {
  assert.equal(decideCutover(base({ remainingBytes: 40 * MB, history: [41 * MB, 40.5 * MB] })).cutover, false);
  const d = decideCutover(base({ remainingBytes: 40 * MB, history: [41 * MB, 40.5 * MB, 40.2 * MB] }));
  assert.deepEqual(d.cutover, true);
  assert.match((d as { reason: string }).reason, /stopped shrinking/);
});

test('precopy is bounded by the round limit', () => {
  assert.equal(decideCutover(base({ roundsDone: 31, history: Array.from({ length: 30 }, (_, i) => (200 - i * 5) * MB) })).cutover, true);
});

test('hybrid keeps going while rounds shrink the set a lot, then cuts over', () => {
  const cfg = DEFAULT_CUTOVER_CONFIG.hybrid;
  assert.equal(decideCutover(base({ algorithm: 'hybrid', config: cfg, roundsDone: 1, remainingBytes: 40 * MB, history: [100 * MB] })).cutover, false);
  assert.equal(decideCutover(base({ algorithm: 'hybrid', config: cfg, roundsDone: 2, remainingBytes: 35 * MB, history: [100 * MB, 40 * MB] })).cutover, true);
});

test('hybrid cuts over when the VM dirties nearly as fast as the link', () => {
  const cfg = DEFAULT_CUTOVER_CONFIG.hybrid;
  assert.equal(decideCutover(base({ algorithm: 'hybrid', config: cfg, roundsDone: 0, history: [], dirtyBytesPerSec: 10 * MB })).cutover, true);
  assert.equal(decideCutover(base({ algorithm: 'hybrid', config: cfg, roundsDone: 0, history: [], dirtyBytesPerSec: 1 * MB })).cutover, false);
});
