// The engines on a worker-thread pool (what agents run on): a live migration
// with the VM writing (half its writes duplicates, so REFs and compression
// both happen) ends byte-exact and verified, and the report's CPU fields are filled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { migrate } from '../helpers/migration-rig.ts';
import { realRuntime } from '../../src/runtime.ts';
import { WorkerPool } from '../../src/workers/worker-pool.ts';

const SIZE = 16 * 1024 * 1024;

for (const algorithm of ['flimcd', 'precopy'] as const) {
  test(`${algorithm} on a 2-worker pool: live migration ends byte-exact and verified; CPU per GiB reported at both sides`, async (t) => {
    const runtime = realRuntime({ workers: 2 });
    t.after(() => runtime.work.close());
    assert.ok(runtime.work instanceof WorkerPool);
    const { report, vm, rig } = await migrate({ algorithm, size: 2 * SIZE, bandwidthBps: 100e6, delayMs: 3, seed: 11, duplicateWrites: true, runtime });
    assert.equal(vm!.readMismatches, 0, 'no read ever returned stale or missing data');
    assert.equal(vm!.finalMismatches, 0, 'the target holds what the VM wrote');
    if (!report.verified) {
      // Which blocks differ between the two images, and whether the VM wrote them at the target.
      const a = Buffer.alloc(65536);
      const b = Buffer.alloc(65536);
      const differ: string[] = [];
      for (let i = 0; i < (2 * SIZE) / 65536; i++) {
        await rig.srcImage.read(i * 65536, a);
        await rig.tgtImage.read(i * 65536, b);
        if (!a.equals(b)) differ.push(`${i}${rig.postcopy.writtenHere.get(i) ? 'w' : ''}`);
      }
      assert.fail(`not verified; blocks differing now: ${differ.join(' ')}; ${JSON.stringify(report.blocks)}; target ${JSON.stringify(report.dedup.target)}`);
    }
    assert.ok(report.blocks.sent_data > 0);
    if (algorithm === 'flimcd') assert.ok(report.blocks.sent_reference > 0, 'duplicate writes travel as references');
    const { cpu } = report;
    assert.equal(cpu.worker_threads, 2);
    assert.ok(cpu.source_s > 0 && cpu.source_s_per_gib > 0, JSON.stringify(cpu));
    assert.ok(cpu.target_s !== null && cpu.target_s > 0 && cpu.target_s_per_gib! > 0, JSON.stringify(cpu));
    // Per GiB of image (both rounded to milliseconds).
    assert.ok(Math.abs(cpu.source_s_per_gib * ((2 * SIZE) / 2 ** 30) - cpu.source_s) < 0.002, JSON.stringify(cpu));
    assert.ok(cpu.source_workers_busy_s > 0, 'ids and zstd ran on the workers');
  });
}

test('migrate-back on a pool: the target builds blocks from its old copy (OFFER/HAVE), the rest travels, verified', async (t) => {
  const runtime = realRuntime({ workers: 2 });
  t.after(() => runtime.work.close());
  const old = Buffer.alloc(SIZE);
  for (let i = 0; i < old.length; i += 4096) old.write(`old block ${i} `.repeat(200).slice(0, 4096), i);
  const now = Buffer.from(old);
  for (let i = 0; i < now.length; i += 7 * 65536) now.write('changed since the copy', i);
  const { report, vm } = await migrate({ algorithm: 'flimcd', size: SIZE, bandwidthBps: 200e6, delayMs: 3, seed: 5, runtime, targetInitial: old, sourceInitial: now, vm: false });
  assert.equal(vm, undefined);
  assert.equal(report.verified, true);
  assert.ok(report.dedup.replica_blocks > 0, JSON.stringify(report.dedup));
  assert.ok(report.blocks.sent_data > 0 && report.blocks.sent_data < SIZE / 65536 / 2, `${report.blocks.sent_data} blocks as data`);
});
