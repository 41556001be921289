// The reduced fault suite CI runs: 10 seeded schedules of link cuts, stalls,
// delays and kill -9 of either agent process across pre-copy, cut-over and
// post-copy. Each must end verified with a byte-exact target image.
// The full form (100+) is `npm run test:faults`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMany } from './run-faults.ts';
import { describeSchedule, generateSchedule } from './schedule.ts';

const COUNT = Number(process.env.FLIMCD_FAULT_COUNT ?? 10);
const FIRST = Number(process.env.FLIMCD_FAULT_SEED ?? 1001);

test(`${COUNT} random fault schedules end verified and byte-exact`, { timeout: 15 * 60_000 }, async () => {
  const results = await runMany(FIRST, COUNT, 2);
  const failed = [...results].filter(([, r]) => !r.ok);
  const msg = failed.map(([seed, r]) => `${describeSchedule(generateSchedule(seed))}\n  ${r.problems.join('\n  ')}\n  logs: ${r.dir}\n  replay: npm run test:faults -- --seed ${seed} --count 1`).join('\n');
  assert.equal(failed.length, 0, msg);
  const fired = [...results.values()].flatMap((r) => r.fired.map((f) => f.replace(/\(.*$/, '')));
  for (const kind of ['kill-source', 'kill-target', 'cut']) assert.ok(fired.some((f) => f.startsWith(kind)), `some schedule fired ${kind}`);
});
