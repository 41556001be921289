// A cut-over requested while a pre-copy round waits on its offers (the target answers which blocks
// it holds; the lacking ones follow as data) holds the VM's I/O at once: what the round has not sent
// travels in post-copy. Before, the hold waited for the whole round: on a session resumed after a
// restart every block is offered, and the cut-over took seconds (issue 21, "downtime that depends on history").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, expectVerifiedExact } from '../helpers/migration-rig.ts';
import { until } from '../helpers/until.ts';
import { Prng } from '../../src/workload/prng.ts';

const BS = 65536;
const SIZE = 16 * 1024 * 1024;
const BLOCKS = SIZE / BS;

test('a cut-over requested during a round of offers holds without sending the round\'s lacking blocks first, and the migration ends verified', async () => {
  const old = Buffer.allocUnsafe(SIZE);
  new Prng(1).fill(old);
  // The source differs from the target's old copy in every other block: half the offers come back lacking.
  const now = Buffer.from(old);
  const rng = new Prng(2);
  for (let b = 0; b < BLOCKS; b += 2) rng.fill(now.subarray(b * BS, (b + 1) * BS));
  // A slow link: the lacking half (8 MiB) takes seconds to send.
  const rig = buildRig({ algorithm: 'flimcd', size: SIZE, bandwidthBps: 20e6, delayMs: 5, seed: 7, targetInitial: old, manualCutover: true });
  await rig.srcImage.write(0, now);
  await rig.start();
  const dataSent = () => rig.srcCh.ledger.blocks.dataBlocks;
  let atHold: number | undefined;
  const hold = rig.srcGate.hold.bind(rig.srcGate);
  rig.srcGate.hold = () => {
    atHold = dataSent();
    return hold();
  };
  try {
    const run = rig.source.run();
    // Half the blocks offered: the round is under way, answers coming back and lacking blocks going out.
    await until(() => (rig.source.status().counts.offeredBlocks ?? 0) >= BLOCKS / 2, 30_000, 'the round never offered half the blocks');
    const atRequest = dataSent();
    rig.source.requestCutover();
    const report = await expectVerifiedExact(rig, run, now);
    assert.ok(atRequest < BLOCKS / 4, `only ${BLOCKS / 2 - atRequest} of ${BLOCKS / 2} lacking blocks were left at the request: the test needs a round still under way`);
    assert.ok(atHold !== undefined && atHold - atRequest <= 2, `${(atHold ?? NaN) - atRequest} blocks went as data between the cut-over request and the hold`);
    assert.ok(report.blocks.push + report.blocks.demand >= BLOCKS / 4, 'the round\'s lacking blocks travelled in post-copy');
  } finally {
    rig.srcCh.close();
    rig.tgtCh.close();
  }
});
