// A real QEMU guest (TCG, Debian's cloud kernel, busybox initramfs) migrates with
// flimcd while its workload writes; the guest re-reads every block it wrote at
// the target and the host compares the image. The negative control sabotages
// the storage hand-over and must make the same checks fail.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { guestKernelFor } from '../helpers/guest-kernel.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { GuestKernel } from '../../testing/qemu/guest.ts';
import { runVmMigration, type VmRigOptions } from '../../testing/qemu/rig.ts';
import { log } from '../../src/util/log.ts';

const guestKernel = (t: TestContext): GuestKernel | undefined => guestKernelFor(t);

const common = (dir: string, kernel: GuestKernel): VmRigOptions => ({
  dir,
  kernel,
  method: 'flimcd',
  diskBytes: 64 << 20,
  memMiB: 128,
  bandwidthBps: 100e6,
  rttMs: 20,
  warmupMs: 1500,
  writesAtTarget: 25,
  log: log.child({ test: 'vm' }),
});

test('a live QEMU guest migrates with flimcd while it writes: the guest re-reads every block it wrote, the host compares the image', { timeout: 150_000 }, async (t) => {
  const kernel = guestKernel(t);
  if (!kernel) return;
  const stages = new Set<string>();
  const r = await runVmMigration({ ...common(tempDir(t), kernel), onProgress: (p) => stages.add(p.stage) });
  assert.equal(r.guest.verdict, 'PASS', `guest: ${r.guest.line}\n${r.guest.mismatches.slice(0, 5).join('\n')}\n${r.serialTail.join('\n')}`);
  assert.ok(r.guest.writes >= 50, `the workload ran (${r.guest.writes} writes)`);
  assert.ok(r.host.checkedWritten > 0 && r.host.checkedWritten + r.host.checkedOther === 1024);
  assert.equal(r.host.mismatches, 0, r.host.firstMismatch ?? '');
  // The orchestration went through every stage, the VM runs at the target, the disk is verified.
  assert.deepEqual([...stages].filter((s) => s !== 'rollback'), ['precopy', 'ram', 'switchover', 'postcopy', 'done']);
  assert.equal(r.vm?.verified, true);
  assert.equal(r.flimcd?.verified, true);
  assert.ok(r.vm.ram.transferred_bytes > 0, 'QEMU moved the RAM');
  assert.ok(r.downtime_ms > 0 && r.downtime_ms < 10_000, `downtime ${r.downtime_ms} ms`);
  // The guest kept writing after it resumed at the target; those blocks were checked too.
  assert.ok(r.guest.writesAtTarget >= 25, `writes at the target: ${r.guest.writesAtTarget}`);
});

test('negative control: a storage hand-over without the final dirty set makes the guest check and the host comparison fail', { timeout: 150_000 }, async (t) => {
  const kernel = guestKernel(t);
  if (!kernel) return;
  const r = await runVmMigration({ ...common(tempDir(t), kernel), sabotage: 'stale-handover' });
  // flimcd itself still verified its own copy; the VM however ran on the stale one.
  assert.equal(r.flimcd?.verified, true);
  assert.equal(r.guest.verdict, 'FAIL', `the guest must notice stale blocks: ${r.guest.line}`);
  assert.match(r.guest.line, /bad=[1-9]/);
  assert.ok(r.guest.mismatches.length > 0);
  assert.ok(r.host.mismatches > 0, 'the host comparison must fail as well');
});

for (const failAt of ['ram-link', 'after-storage-cutover'] as const) {
  test(`a failure (${failAt}) leaves the VM running at the source with its data intact`, { timeout: 150_000 }, async (t) => {
    const kernel = guestKernel(t);
    if (!kernel) return;
    const r = await runVmMigration({ ...common(tempDir(t), kernel), failAt });
    assert.ok(r.failure, 'the migration must fail');
    assert.equal(r.failure.vmAt, 'source', r.failure.message);
    assert.match(r.failure.message, /VM migration failed; the VM keeps running at the source/);
    assert.equal(r.failure.sourceStatus, 'running');
    assert.notEqual(r.failure.targetStatus, 'running');
    // The guest kept writing at the source after the failure, then checked everything there.
    assert.ok(r.guest.writesAtTarget >= 25, `writes after the failure: ${r.guest.writesAtTarget}`);
    assert.equal(r.guest.verdict, 'PASS', `${r.guest.line}\n${r.serialTail.join('\n')}`);
    assert.equal(r.host.mismatches, 0, r.host.firstMismatch ?? '');
  });
}
