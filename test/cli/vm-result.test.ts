// `flimcd vm migrate`'s verdict and `flimcd vm qemu-args` (issue 21): a guest
// that saw I/O errors is a failure (exit 1), never "disk verified" and exit 0;
// the QEMU lines carry reconnect-delay and the computed geometry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { truncateSync, writeFileSync } from 'node:fs';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { exitCodeForResult, resultLine } from '../../src/cli/commands/vm.ts';
import type { VmMigrationResult } from '../../src/qemu/vm-migrate.ts';

const none = { events: 0, failed_reads: 0, failed_writes: 0, failed_flushes: 0 };
const result = (o: Partial<VmMigrationResult>): VmMigrationResult => ({
  time_total_s: 10, time_precopy_s: 5, time_ram_s: 4, time_postcopy_s: 1, downtime_ms: 200, qemu_downtime_ms: 50, storage_cutover_ms: 30,
  ram: { transferred_bytes: 1 << 20, total_bytes: 1 << 20, duplicate_pages: 0, normal_pages: 256, dirty_sync_count: 2 },
  disk: {}, missing_at_cutover: 0, verified: true, guest_io_errors: { ...none, total: 0, source: none, target: none }, disks: [], ...o,
});

test('vm migrate result: guest I/O errors make it a failure (exit 1) whatever the disk verification says', () => {
  const clean = result({});
  assert.equal(exitCodeForResult(clean), 0);
  assert.match(resultLine(clean), /disk verified, no guest I\/O error$/);
  const target = { events: 2, failed_reads: 2, failed_writes: 0, failed_flushes: 0 };
  const hurt = result({ guest_io_errors: { ...target, total: 2, source: none, target } });
  assert.equal(exitCodeForResult(hurt), 1);
  assert.match(resultLine(hurt), /FAILED: the guest saw 2 I\/O errors \(2 failed reads, 0 failed writes, 2 BLOCK_IO_ERROR events\)/);
  assert.doesNotMatch(resultLine(hurt), /disk verified/);
  assert.equal(exitCodeForResult(result({ verified: false })), 3);
  assert.equal(exitCodeForResult(result({ verified: null })), 0);
});

test('vm qemu-args prints the -blockdev (with reconnect-delay) and -device lines with the geometry for the image', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, '');
  truncateSync(img, 1 << 30);
  const r = await flimcd(['vm', 'qemu-args', '--disk', img, '--socket', 'unix:/run/vm.sock']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '-blockdev driver=nbd,server.type=unix,server.path=/run/vm.sock,reconnect-delay=30,node-name=d0\n-device virtio-blk-pci,drive=d0,cyls=2080,heads=16,secs=63\n');
  const tcp = await flimcd(['vm', 'qemu-args', '--disk', img, '--socket', 'tcp:10.0.0.5:10809', '--name', 'vm', '--reconnect-delay', '10s', '--node-name', 'disk0']);
  assert.match(tcp.stdout, /^-blockdev driver=nbd,server.type=inet,server.host=10.0.0.5,server.port=10809,export=vm,reconnect-delay=10,node-name=disk0\n-device virtio-blk-pci,drive=disk0,cyls=2080,/);
  for (const [args, err] of [
    [['--disk', join(dir, 'missing.img')], /--disk: .*missing\.img does not exist/],
    [['--disk', img, '--socket', 'vm.sock'], /--socket: "vm.sock" must start with unix: or tcp:/],
    [['--disk', img, '--reconnect-delay', '1500ms'], /--reconnect-delay: QEMU takes whole seconds/],
  ] as const) {
    const bad = await flimcd(['vm', 'qemu-args', ...args]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, err);
    assert.equal(bad.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  }
  const rt = await flimcd(['vm', 'migrate', '--source-qmp', 'unix:/a', '--target-qmp', 'unix:/b', '--source-control', 'unix:/c', '--target-control', 'unix:/d', '--incoming', 'tcp:127.0.0.1:4444', '--ram-timeout', '30']);
  assert.equal(rt.code, 2);
  assert.match(rt.stderr, /--ram-timeout/);
});
