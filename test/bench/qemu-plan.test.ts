// bench:qemu without a guest: its plan (tuning, alternating order, both copy modes), its
// mirror-setting parser, and its command line (--dry-run; bad input exits 2 naming the option).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { benchPlan, parseMirrorSettings, QEMU_DEFAULT_MIRROR } from '../../bench/qemu-plan.ts';
import { run } from '../helpers/peers.ts';

const BENCH = fileURLToPath(new URL('../../bench/qemu.ts', import.meta.url));

test('mirror settings: GRANULARITY/BUF-SIZE pairs, QEMU limits enforced', () => {
  assert.deepEqual(parseMirrorSettings('64K/10M, 1M/32M'), [QEMU_DEFAULT_MIRROR, { granularity: 1 << 20, bufSize: 32 << 20 }]);
  assert.throws(() => parseMirrorSettings('3K/1M'), /granularity 3K must be a power of two/);
  assert.throws(() => parseMirrorSettings('1M/64K'), /buf-size 64K is smaller than the granularity/);
  assert.throws(() => parseMirrorSettings('64K'), /not GRANULARITY\/BUF-SIZE/);
  assert.throws(() => parseMirrorSettings(','), /no settings/);
});

test('plan: tuning per case and copy mode when several settings are given, then rounds in alternating order', () => {
  const settings = parseMirrorSettings('64K/10M,1M/32M');
  const plan = benchPlan({ cases: ['base', 'empty'], runs: 3, modes: ['background', 'write-blocking'], mirror: settings });
  const tune = plan.filter((s) => s.phase === 'tune');
  assert.equal(tune.length, 2 * 2 * 2);
  assert.ok(tune.every((s) => s.method !== 'flimcd' && s.mirror));
  const measure = plan.filter((s) => s.phase === 'measure');
  assert.equal(measure.length, 3 * 2 * 3);
  // Tuned settings are picked at run time: measured QEMU steps carry none.
  assert.ok(measure.every((s) => s.mirror === undefined));
  const order = (run: number) => measure.filter((s) => s.run === run && s.case === 'base').map((s) => s.method);
  assert.deepEqual(order(0), ['flimcd', 'qemu-background', 'qemu-write-blocking']);
  assert.deepEqual(order(1), ['qemu-write-blocking', 'qemu-background', 'flimcd']);
  assert.deepEqual(order(2), order(0));
  // Every measured run sits after every tuning run.
  assert.ok(plan.findIndex((s) => s.phase === 'measure') === tune.length);
});

test('plan: one setting means no tuning runs, and QEMU steps carry that setting', () => {
  const plan = benchPlan({ cases: ['empty'], runs: 1, modes: ['write-blocking'], mirror: [QEMU_DEFAULT_MIRROR] });
  assert.deepEqual(plan, [
    { phase: 'measure', run: 0, case: 'empty', method: 'flimcd' },
    { phase: 'measure', run: 0, case: 'empty', method: 'qemu-write-blocking', mirror: QEMU_DEFAULT_MIRROR },
  ]);
});

test('bench:qemu --dry-run --json prints the plan and config without starting a guest', async () => {
  const r = await run(process.execPath, ['--import', 'tsx', BENCH, '--dry-run', '--json', '--quick', '--ram', 'multifd-zstd', '--write-rate', '512KiB'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { dry_run: boolean; config: { runs: number; disk_bytes: number; ram: string; workload: { target_writes_per_s: number } }; plan: Array<{ phase: string; method: string }> };
  assert.equal(out.dry_run, true);
  assert.equal(out.config.runs, 1);
  assert.equal(out.config.disk_bytes, 64 * 1024 * 1024);
  assert.equal(out.config.ram, 'multifd-zstd');
  assert.equal(out.config.workload.target_writes_per_s, 8);
  assert.equal(out.plan.filter((s) => s.method === 'flimcd').length, 2);
});

test('bench:qemu: bad input exits 2 with one line naming the option', async () => {
  for (const [argv, want] of [
    [['--ram', 'fast'], /--ram must be plain or multifd-zstd, got "fast"/],
    [['--mirror-tune', '1M/64K'], /--mirror-tune: buf-size 64K is smaller/],
    [['--cases', 'nobase'], /--cases: unknown "nobase"/],
    [['--size', '100000'], /--size must be a whole number of MiB/],
  ] as const) {
    const r = await run(process.execPath, ['--import', 'tsx', BENCH, '--dry-run', ...argv], { timeoutMs: 60_000 });
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0]!, want);
  }
});
