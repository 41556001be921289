// Source and target engines end to end in one process, for every algorithm,
// with a VM writing and reading through every phase (including writes at the
// target during post-copy): the target must end byte-identical to the VM's
// model, reads must never be stale, and `verified` must be true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { migrate } from '../helpers/migration-rig.ts';
import { ALGORITHMS } from '../../src/policy/algorithm.ts';

const SIZE = 24 * 1024 * 1024;

for (const algorithm of ALGORITHMS) {
  test(`${algorithm}: live migration under concurrent I/O ends byte-exact and verified`, async () => {
    const { report, vm } = await migrate({ algorithm, size: SIZE, bandwidthBps: 200e6, delayMs: 3, seed: 7 });
    assert.equal(vm!.readMismatches, 0, 'no read ever returned stale or missing data');
    assert.ok(vm!.switched, 'the VM was moved to the target');
    assert.equal(vm!.finalMismatches, 0, 'every page of the target image holds what the VM wrote over the original');
    assert.equal(report.verified, true);
    assert.equal(report.algorithm, algorithm);
    assert.ok(report.wire_bytes > 0);
    assert.ok(report.time_total_s > 0);
    assert.ok(vm!.result.writes > 0 && vm!.result.reads > 0);
    if (algorithm !== 'precopy') {
      assert.ok(vm!.ioAtTarget, 'the VM did I/O at the target during post-copy');
    } else {
      assert.equal(report.misses, 0, 'pre-copy never misses');
    }
    if (algorithm === 'postcopy') assert.ok(report.misses > 0, 'immediate cut-over means misses');
    // A hole-heavy image: a third of it travels as zero ranges, not data.
    assert.ok(report.blocks.zero >= (SIZE / 65536) / 4, `zero blocks ${report.blocks.zero}`);
  });
}

test('verification fails when the target image is corrupted behind the engine (the check can fail)', async () => {
  const { buildRig, fillImage } = await import('../helpers/migration-rig.ts');
  const rig = buildRig({ algorithm: 'hybrid', size: 8 * 1024 * 1024, seed: 3 });
  await fillImage(rig.srcImage, 3);
  await rig.start();
  // Corrupt a block on the target right after it is applied.
  const orig = rig.postcopy.applyData.bind(rig.postcopy);
  rig.postcopy.applyData = async (block, data) => {
    const r = await orig(block, data);
    if (block === 5) await rig.tgtImage.write(5 * 65536 + 100, Buffer.from([0xde, 0xad]));
    return r;
  };
  const report = await rig.source.run();
  rig.srcCh.close();
  rig.tgtCh.close();
  assert.equal(report.verified, false);
});
