// The source empties the link before it holds the VM's I/O: what is on the link when CUTOVER goes
// out is what CUTOVER waits behind (the target receives and applies it first), all of it downtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, fillImage } from '../helpers/migration-rig.ts';

test('at the hold nothing the source sent is still unapplied at the target, and the migration ends verified', async () => {
  // 40 ms round trip at 50 Mbit/s: a window of pre-copy data is ~0.5 MB, 80 ms of link time.
  const rig = buildRig({ algorithm: 'hybrid', size: 16 * 1024 * 1024, bandwidthBps: 50e6, delayMs: 20, seed: 5 });
  await fillImage(rig.srcImage, 5);
  await rig.start();
  const inFlightAtHold: number[] = [];
  const hold = rig.srcGate.hold.bind(rig.srcGate);
  rig.srcGate.hold = () => {
    inFlightAtHold.push(rig.srcCh.stats.inFlight);
    return hold();
  };
  try {
    const report = await rig.source.run();
    await rig.target.result;
    assert.equal(report.verified, true);
    assert.deepEqual(inFlightAtHold, [0], 'the link was drained before the hold');
  } finally {
    rig.srcCh.close();
    rig.tgtCh.close();
  }
});
