// A real QEMU guest with two disks, vda raw and vdb a qcow2 overlay on a base
// the target holds, migrates with `migrateVm` (one agent pair per disk, both
// links through one emulated WAN) while it writes to both: at the target it
// re-reads every block it wrote on both disks, and the host compares both
// images. Then: one disk's target agent dies before the switch-over, and both
// disks roll back with the VM running at the source, its data intact.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { guestKernelFor } from '../helpers/guest-kernel.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { GuestKernel } from '../../testing/qemu/guest.ts';
import { runTwoDiskMigration, type TwoDiskRigOptions } from '../../testing/qemu/two-disk-rig.ts';
import { log } from '../../src/util/log.ts';

const guestKernel = (t: TestContext): GuestKernel | undefined => guestKernelFor(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon');

const common = (dir: string, kernel: GuestKernel): TwoDiskRigOptions => ({
  dir, kernel, diskBytes: 32 << 20, memMiB: 128, bandwidthBps: 100e6, rttMs: 20, warmupMs: 1500, writesAtTarget: 25, log: log.child({ test: 'vm-two-disks' }),
});

test('a two-disk QEMU guest (raw + qcow2 overlay) migrates while writing to both: both disks cut over together, verified by the guest and the host', { timeout: 240_000 }, async (t) => {
  const kernel = guestKernel(t);
  if (!kernel) return;
  const stages: string[] = [];
  const r = await runTwoDiskMigration({ ...common(tempDir(t), kernel), onProgress: (p) => stages.at(-1) !== p.stage && stages.push(p.stage) });
  assert.equal(r.guest.verdict, 'PASS', `guest: ${r.guest.line}\n${r.guest.mismatches.slice(0, 5).join('\n')}\n${r.serialTail.join('\n')}`);
  for (const dev of ['vda', 'vdb'] as const) {
    assert.equal(r.host[dev].mismatches, 0, `${dev}: ${r.host[dev].firstMismatch ?? ''}`);
    assert.ok(r.host[dev].checkedWritten > 0, `the guest wrote to ${dev}`);
  }
  assert.deepEqual(stages, ['precopy', 'ram', 'switchover', 'postcopy', 'done']);
  assert.ok(r.vm);
  assert.deepEqual(r.vm.disks.map((d) => [d.name, d.verified]), [['vda', true], ['vdb', true]]);
  assert.equal(r.vm.verified, true);
  // One storage cut-over for both: each disk served within the one switch-over pause.
  for (const d of r.vm.disks) assert.ok(d.serving_after_ms !== null && d.serving_after_ms <= r.vm.storage_cutover_ms, `${d.name} served after ${d.serving_after_ms} ms of ${r.vm.storage_cutover_ms}`);
  // The target's vdb is again a thin overlay on its own base, and sound.
  assert.ok(r.qcow2.checkOk, r.qcow2.checkOutput);
  assert.match(r.qcow2.backing ?? '', /base-at-target\.qcow2$/);
  // The base the target holds was not sent: vdb's blocks from the backing chain are counted, not carried.
  assert.ok((r.reports?.vdb.blocks.from_backing ?? 0) > 0, `from_backing ${r.reports?.vdb.blocks.from_backing}`);
  assert.ok(r.guest.writesAtTarget >= 25, `writes at the target: ${r.guest.writesAtTarget}`);
});

test('a failure of one disk\'s agent before the switch-over rolls both disks back: the VM keeps running at the source with both disks intact', { timeout: 240_000 }, async (t) => {
  const kernel = guestKernel(t);
  if (!kernel) return;
  const r = await runTwoDiskMigration({ ...common(tempDir(t), kernel), failAt: 'target-agent-vdb' });
  assert.ok(r.failure, 'the migration must fail');
  assert.equal(r.failure.vmAt, 'source', r.failure.message);
  assert.match(r.failure.message, /VM migration failed; the VM keeps running at the source: .*disk vdb/);
  assert.equal(r.failure.sourceStatus, 'running');
  assert.notEqual(r.failure.targetStatus, 'running');
  assert.equal(r.guest.verdict, 'PASS', `${r.guest.line}\n${r.serialTail.join('\n')}`);
  assert.ok(r.guest.writesAtTarget >= 25, `writes after the failure: ${r.guest.writesAtTarget}`);
  for (const dev of ['vda', 'vdb'] as const) assert.equal(r.host[dev].mismatches, 0, `${dev}: ${r.host[dev].firstMismatch ?? ''}`);
  assert.ok(r.qcow2.checkOk, r.qcow2.checkOutput);
});
