// Faults through a fleet run with claims, the longer forms (npm run test:long):
// a Redis master killed mid-run and stale locator entries (test/helpers/fleet-faults.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync } from 'node:fs';
import { BS, faultyFleet } from '../helpers/fleet-faults.ts';
import { Prng } from '../../src/workload/prng.ts';

test('a Redis master killed mid-run (no replica): lookups and claims fail, blocks cross the WAN; verified, byte-exact, one warning', { timeout: 90_000 }, async (t) => {
  let killed = false;
  const f = await faultyFleet(t, (rc) => ({
    prepared(h) {
      // The master dies as the second lookup batch is asked, once the first is answered: a poll for the
      // first LAN block may come after every lookup was answered, and then nothing is left to fail.
      const locator = h.locator!;
      const lookup = locator.lookup.bind(locator);
      let first: ReturnType<typeof lookup> | undefined;
      locator.lookup = async (blockSize, ids) => {
        if (!first) return (first = lookup(blockSize, ids));
        if (!killed) {
          killed = true;
          await first.then(() => rc.kill(0));
        }
        return lookup(blockSize, ids);
      };
    },
  }));
  if (!f) return;
  assert.ok(killed);
  assert.deepEqual(f.warnings, [f.warnings.find((w) => /content locator/.test(w))], `one warning, the locator's: ${JSON.stringify(f.warnings)}`);
});

test('stale locator entries (the store host\'s file changed after it was published): re-hashes reject them, those blocks cross the WAN; verified, byte-exact', { timeout: 90_000 }, async (t) => {
  const spoiled = 8;
  const f = await faultyFleet(t, (_rc) => ({
    prepared(h) {
      const fd = openSync(h.storeImage, 'r+');
      const rng = new Prng(9);
      for (let b = 0; b < spoiled; b++) {
        const junk = Buffer.allocUnsafe(BS);
        rng.fill(junk);
        writeSync(fd, junk, 0, BS, b * BS * 3);
      }
      closeSync(fd);
    },
  }));
  if (!f) return;
  const stale = f.r.result.rows.reduce((s, row) => s + ((row.report!.dedup.target as { local?: { lanStale?: number } } | null)?.local?.lanStale ?? 0), 0);
  assert.ok(stale >= 1 && stale <= 2 * spoiled, `stale blocks rejected: ${stale}`);
  assert.deepEqual(f.warnings, [], 'a stale entry is routine: no warning');
});
