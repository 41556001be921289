import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overlapStartsRam, PrecopyPace, ramSecondsEstimate } from '../../src/qemu/ram-start.ts';
import { QmpClient } from '../../src/qemu/qmp.ts';
import { startBareQemu } from '../helpers/bare-qemu.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { DiskStatus } from '../../src/qemu/disk-set.ts';

const disk = (name: string, remainingBlocks: number | null, phase = 'precopy'): DiskStatus => ({ name, status: { phase, remainingBlocks, blockSize: 65536 } });

test('the pre-copy pace is the remaining blocks over the rate they went down at since the first look, all disks together', () => {
  const pace = new PrecopyPace();
  assert.equal(pace.secondsLeft(0, [disk('a', 1000), disk('b', 1000)]), null, 'no pace from one look');
  assert.equal(pace.secondsLeft(300, [disk('a', 900), disk('b', 1000)]), null, 'under half a second seen');
  // 2000 → 1500 in 1 s: 500 blocks/s, 1500 left: 3 s.
  assert.equal(pace.secondsLeft(1000, [disk('a', 700), disk('b', 800)]), 3);
  // Dirtying that outruns the pass gives no pace rather than a negative one.
  assert.equal(pace.secondsLeft(2000, [disk('a', 1500), disk('b', 1500)]), null);
  assert.equal(pace.secondsLeft(2500, [disk('a', 0), disk('b', 0)]), 0);
});

test('a disk past pre-copy or without a remaining count gives no pace', () => {
  const pace = new PrecopyPace();
  pace.secondsLeft(0, [disk('a', 100)]);
  assert.equal(pace.secondsLeft(1000, [disk('a', 50, 'cutover')]), null);
  assert.equal(pace.secondsLeft(1000, [disk('a', null)]), null);
  assert.equal(pace.secondsLeft(1000, []), null);
});

test('overlap starts the RAM once the pre-copy is due to end within the RAM migration\'s time, never on an unknown', () => {
  assert.equal(overlapStartsRam(3, 5.4), true);
  assert.equal(overlapStartsRam(5.4, 5.4), true);
  assert.equal(overlapStartsRam(6, 5.4), false);
  assert.equal(overlapStartsRam(null, 5.4), false);
  assert.equal(overlapStartsRam(1, null), false);
});

test('the RAM migration\'s time is the guest\'s RAM over the RAM bandwidth given, else QEMU\'s own max-bandwidth (a real QEMU)', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const qemu = await startBareQemu(t, dir, 'ram', ['-M', 'none', '-m', '128M']);
  const q = await QmpClient.connect({ kind: 'unix', path: qemu.qmpPath }, { name: 'bare QEMU' });
  t.after(() => q.close());
  assert.equal(await ramSecondsEstimate(q, 32 * 2 ** 20), 4);
  await qemu.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 2 ** 20 });
  assert.equal(await ramSecondsEstimate(q, undefined), 2);
});
