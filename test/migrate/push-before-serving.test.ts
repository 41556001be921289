// Post-copy's push starts the moment CUTOVER is on the link, but only about a round trip of it goes
// out before the target serves: a full-rate push inside the downtime keeps both sides' CPUs busy and
// fills the target's buffer of what follows CUTOVER, which it applies only once it serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, expectVerifiedExact, fillImage } from '../helpers/migration-rig.ts';
import { DataReason, MsgType } from '../../src/wire/messages.ts';

test('before the target serves, the source pushes about a round trip of the link, then the rest; verified', async () => {
  // 40 ms round trip at 50 Mbit/s: a round trip of the link is 250 KB, under the 256 KiB floor (4 blocks).
  const rig = buildRig({ algorithm: 'postcopy', size: 16 * 1024 * 1024, bandwidthBps: 50e6, delayMs: 20, seed: 9 });
  await fillImage(rig.srcImage, 9);
  const expected = Buffer.alloc(rig.srcImage.size);
  await rig.srcImage.read(0, expected);
  await rig.start();
  let pushed = 0;
  const send = rig.srcCh.send.bind(rig.srcCh);
  rig.srcCh.send = (...args: Parameters<typeof send>) => {
    const m = args[0];
    if ((m.type === MsgType.DATA || m.type === MsgType.ZERO || m.type === MsgType.REF) && m.reason === DataReason.PUSH) pushed++;
    return send(...args);
  };
  // The target's cut-over flush takes 400 ms (a slow disk): 2.5 MB of link time.
  const pushedWhileTargetFlushed: number[] = [];
  const flush = rig.tgtImage.flush.bind(rig.tgtImage);
  rig.tgtImage.flush = async () => {
    await new Promise((r) => setTimeout(r, 400));
    pushedWhileTargetFlushed.push(pushed);
    return flush();
  };
  try {
    await expectVerifiedExact(rig, rig.source.run(), expected);
    const before = pushedWhileTargetFlushed[0]!;
    assert.ok(before >= 1, `the push started behind CUTOVER (${before} blocks)`);
    assert.ok(before <= 4 + 8, `at most about a round trip (4 blocks, plus the read-ahead) before the target served: ${before}`);
    assert.ok(pushed > 100, `the rest followed: ${pushed} blocks pushed`);
  } finally {
    rig.srcCh.close();
    rig.tgtCh.close();
  }
});
