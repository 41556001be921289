// The source sends its holes as ZERO ranges before any data. A VM write that
// lands in a hole after the extents were read (while the engine works through
// them) must still reach the target: the write's block stays to be sent as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, fillImage } from '../helpers/migration-rig.ts';

for (const algorithm of ['precopy', 'flimcd'] as const) {
  test(`${algorithm}: a write into a hole while the holes are being sent reaches the target`, async () => {
    const size = 8 * 1024 * 1024;
    const rig = buildRig({ algorithm, size, seed: 9 });
    await fillImage(rig.srcImage, 9);
    const hole = 2 * 1024 * 1024 + 5 * 65536; // inside the third MiB, which fillImage leaves as a hole
    const written = Buffer.alloc(65536, 0x5a);
    const inner = rig.srcImage.extents.bind(rig.srcImage);
    let raced = false;
    rig.srcImage.extents = async (offset, length, max) => {
      const answer = await inner(offset, length, max);
      if (!raced) {
        raced = true;
        // The VM's write lands after the answer was read, before the engine acts on it.
        await rig.tracking.write(hole, written);
      }
      return answer;
    };
    await rig.start();
    const report = await rig.source.run();
    await rig.target.result;
    rig.srcCh.close();
    rig.tgtCh.close();
    assert.ok(raced, 'the write raced the extents');
    const got = Buffer.alloc(65536);
    await rig.tgtImage.read(hole, got);
    assert.ok(got.equals(written), 'the target holds the write, not zeros');
    assert.equal(report.verified, true);
  });
}
