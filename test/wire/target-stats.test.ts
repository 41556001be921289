import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../src/errors.ts';
import { decodeMessage, encodeMessage, MsgType, type Message } from '../../src/wire/messages.ts';
import type { TargetStats } from '../../src/wire/target-stats.ts';

const stats: TargetStats = {
  phase: 'verify', blocks: 64, blockSize: 65536, missingBlocks: 0, receivedBlocks: { bulk: 60, demand: 4 }, receivedBytes: 4 << 20,
  dedup: { refBlocks: 3, refFromReceived: 1, refFromLocal: 2, refFallback: 0, offered: 10, offerHave: 7, compressedBlocks: 5, local: { same: 1, received: 1, replica: 5, lookups: 9, staleEntries: 0, misses: 2 } },
  readBlocks: 40, missBlocks: 4, claimedByWrite: 1, partialWriteFetches: 0, droppedData: 0, fetchRequests: 4,
  missP50: 21.5, missP99: 40, missMean: 23, prefetchRequested: 12, prefetchHits: 9, servingAt: 1234,
};

const verify = (s: unknown): Message => ({ type: MsgType.VERIFY, verify: { root: 'ab'.repeat(32), targetWrites: 1, hashMs: 12, stats: s as TargetStats } });
const roundTrip = (m: Message) => decodeMessage(m.type, Buffer.concat(encodeMessage(m)));

test('VERIFY carries the target statistics typed: what the target encodes is what the source decodes', () => {
  const got = roundTrip(verify(stats));
  assert.equal(got.type, MsgType.VERIFY);
  assert.deepEqual(got.type === MsgType.VERIFY && got.verify.stats, stats);
});

test('measures without samples (undefined) travel as absent and decode as absent', () => {
  const got = roundTrip(verify({ ...stats, missP50: undefined, missP99: undefined, missMean: undefined, dedup: { ...stats.dedup, local: undefined } }));
  assert.ok(got.type === MsgType.VERIFY);
  assert.equal(got.verify.stats.missP50, undefined);
  assert.equal(got.verify.stats.dedup.local, undefined);
  assert.equal(got.verify.stats.readBlocks, 40);
});

test('malformed target statistics are a protocol error', () => {
  const { readBlocks: _, ...withoutReads } = stats;
  for (const bad of [
    { ...stats, missBlocks: '4' },
    withoutReads,
    { ...stats, dedup: { ...stats.dedup, offered: null } },
    { ...stats, receivedBlocks: { bulk: 'many' } },
    { misses: 3 },
  ]) {
    assert.throws(() => roundTrip(verify(bad)), (e: unknown) => e instanceof ProtocolError && /VERIFY: stats/.test((e as Error).message), JSON.stringify(bad).slice(0, 80));
  }
});
