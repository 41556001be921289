// qemu-io (QEMU's own NBD client) against our server: patterns, FUA, discard,
// write-zeroes, unaligned and boundary requests, and out-of-range errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk } from '../../src/block/file.ts';
import { requirePeers, run } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startServer } from '../helpers/nbd-server.ts';
import type { TestCtx } from '../helpers/test-context.ts';

const SIZE = 8 * 1024 * 1024;

async function setup(t: TestCtx) {
  const dir = tempDir(t);
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(0));
  const { truncateSync } = await import('node:fs');
  truncateSync(img, SIZE);
  const disk = await FileDisk.open(img, {});
  t.after(() => disk.close());
  const srv = await startServer(t, dir, [{ name: 'vm', disk }]);
  return { img, disk, ...srv };
}

function qemuIo(uri: string, ...cmds: string[]) {
  return run('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])], { timeoutMs: 30000 });
}

test('qemu-io: write patterns and read them back, verified by qemu-io and on the host file', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const { uri, img } = await setup(t);
  const r = await qemuIo(uri,
    'write -P 0xa5 0 64k', 'write -P 0x5a 64k 1M', 'write -P 0x11 3M 4k',
    'read -P 0xa5 0 64k', 'read -P 0x5a 64k 1M', 'read -P 0x11 3M 4k', 'read -P 0 4M 64k');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /fail/i);
  const file = readFileSync(img);
  assert.ok(file.subarray(0, 65536).every((b) => b === 0xa5));
  assert.ok(file.subarray(65536, 65536 + 1048576).every((b) => b === 0x5a));
  assert.ok(file.subarray(3 << 20, (3 << 20) + 4096).every((b) => b === 0x11));
});

test('qemu-io: a wrong pattern is detected (the check can fail)', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const { uri } = await setup(t);
  const r = await qemuIo(uri, 'write -P 0x42 0 4k', 'read -P 0x43 0 4k');
  assert.match(r.stdout + r.stderr, /Pattern verification failed/);
});

test('qemu-io: FUA writes, discard and write-zeroes', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const { uri, img } = await setup(t);
  const r = await qemuIo(uri,
    'write -f -P 0x77 0 256k', 'read -P 0x77 0 256k',
    'discard 64k 64k', 'read -P 0 64k 64k', 'read -P 0x77 0 64k', 'read -P 0x77 128k 128k',
    'write -z 128k 64k', 'read -P 0 128k 64k',
    'write -z -u 192k 64k', 'read -P 0 192k 64k',
    'write -z -f 0 4k', 'read -P 0 0 4k', 'read -P 0x77 4k 60k');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /fail/i);
  const file = readFileSync(img);
  assert.ok(file.subarray(0, 4096).every((b) => b === 0));
  assert.ok(file.subarray(4096, 65536).every((b) => b === 0x77));
  assert.ok(file.subarray(65536, 262144).every((b) => b === 0));
});

test('qemu-io: unaligned and boundary requests', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const { uri, img } = await setup(t);
  const end = SIZE;
  const r = await qemuIo(uri,
    'write -P 0x01 1 1', 'write -P 0x02 4095 2', 'write -P 0x03 12345 6789',
    `write -P 0x04 ${end - 1000} 1000`, `write -P 0x05 ${end - 1} 1`,
    'read -P 0 0 1', 'read -P 0x01 1 1', 'read -P 0x02 4095 2', 'read -P 0x03 12345 6789',
    `read -P 0x04 ${end - 1000} 999`, `read -P 0x05 ${end - 1} 1`,
    'aio_write -P 0x06 100000 777', 'aio_write -P 0x07 200001 5000', 'aio_flush',
    'read -P 0x06 100000 777', 'read -P 0x07 200001 5000');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /fail/i);
  const file = readFileSync(img);
  assert.equal(file[0], 0);
  assert.equal(file[1], 1);
  assert.equal(file[end - 1], 5);
  assert.equal(file[end - 2], 4);
  assert.equal(file[12345 + 6788], 3);
  assert.equal(file[12345 + 6789], 0);
});

test('qemu-io: out-of-range requests get errors and the disk is untouched', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const { uri, img } = await setup(t);
  for (const cmd of [`read ${SIZE} 512`, `read ${SIZE - 512} 1024`, `write -P 0x99 ${SIZE} 512`, `write -P 0x99 ${SIZE - 512} 1024`, `discard ${SIZE} 4096`, `write -z ${SIZE - 4096} 8192`]) {
    const r = await qemuIo(uri, cmd);
    assert.match(r.stdout + r.stderr, /failed|error|out of range/i, `${cmd} should fail: ${r.stdout}${r.stderr}`);
  }
  const file = readFileSync(img);
  assert.equal(file.length, SIZE, 'the image did not grow');
  assert.ok(file.subarray(SIZE - 1024).every((b) => b === 0), 'no partial write at the end');
});
