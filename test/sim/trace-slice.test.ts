// A time slice of a recorded trace (src/sim/trace-slice.ts), as the validation replays it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { traceSlice } from '../../src/sim/trace-slice.ts';

test('a slice keeps the requests from its start for its length, counted from the first request', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-slice-'));
  try {
    const file = join(dir, 't.fiu');
    const line = (s: number, lba: number) => `${s * 1e9 + 5e9} 1 job ${lba} 8 R 8 0 ${'0'.repeat(32)}`;
    writeFileSync(file, [0, 1, 2, 3, 4].map((s) => line(s, s * 8)).join('\n') + '\n');
    assert.deepEqual(traceSlice(file, 1, 2).map((r) => r.lba), [8, 16]);
    assert.deepEqual(traceSlice(file, 3).map((r) => r.lba), [24, 32]);
    assert.equal(traceSlice(file).length, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
