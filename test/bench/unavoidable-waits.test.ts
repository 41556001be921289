import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countUnavoidable } from '../../bench/unavoidable-waits.ts';
import type { FiuRecord } from '../../src/workload/fiu-trace.ts';

const BS = 65536;
/** A request at `ms` on blocks first..first+n-1 (whole 64 KiB blocks unless `bytes` says otherwise). */
function rec(ms: number, op: 'read' | 'write', first: number, n = 1, bytes = n * BS, skip = 0): FiuRecord {
  return { tsNs: BigInt(ms) * 1_000_000n, pid: 1, process: 't', lba: (first * BS + skip) / 512, sectors: bytes / 512, op, major: 8, minor: 0, digests: [], digestUnit: 'page', line: 0 };
}

test('first accesses are split into seen before the cut-over, holes, run continuations and unavoidable', () => {
  const records = [
    rec(0, 'read', 5), // seen before the cut-over (at 100 ms)
    rec(10, 'write', 7),
    rec(100, 'read', 5), // seen
    rec(110, 'read', 20, 2), // two unknown blocks at once: both unavoidable
    rec(120, 'read', 22, 3), // continues the run 20-21: predicted
    rec(130, 'read', 20), // a repeat: an access, not a first access
    rec(140, 'read', 900), // a hole
    rec(150, 'write', 300), // written whole: no wait, not an access
    rec(160, 'read', 300), // reads what the VM wrote: not a first access
    rec(170, 'write', 500, 1, 4096, 8192), // a partial write to an unknown block: unavoidable
    rec(180, 'read', 7), // written before the cut-over: seen
    rec(400, 'read', 600), // after the window
  ];
  const c = countUnavoidable(records, { blockSize: BS, fromMs: 100, toMs: 300, isHole: (b) => b === 900 });
  assert.deepEqual(c, { accesses: 11, firstAccesses: 9, seen: 2, holes: 1, sequential: 3, unavoidable: 3, linkBound: 0 });
});

test('a run that began before the cut-over predicts its next block', () => {
  const c = countUnavoidable([rec(0, 'read', 40, 4), rec(50, 'read', 45)], { blockSize: BS, fromMs: 50, toMs: 100 });
  assert.equal(c.sequential, 1);
  assert.equal(c.unavoidable, 0);
});

test('a reader faster than the link waits whatever is pushed: the link bound', () => {
  const reads = [rec(0, 'read', 1000), ...Array.from({ length: 10 }, (_, k) => rec(100 + k, 'read', 2 * k))]; // then a block a millisecond
  const c = countUnavoidable(reads, { blockSize: BS, fromMs: 100, toMs: 200, blocksPerMs: 0.5 });
  assert.equal(c.firstAccesses, 10);
  assert.equal(c.linkBound, 6); // 10 needed by 109 ms, the link carried 4 of them
  assert.equal(countUnavoidable(reads, { blockSize: BS, fromMs: 100, toMs: 200, blocksPerMs: 2 }).linkBound, 1, 'the first block waits however fast the link');
});
