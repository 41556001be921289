import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { UsageError } from '../../src/errors.ts';
import { parseImageFormat, parseImageSpec, parseNbdUri } from '../../src/image/image-spec.ts';
import { openImage } from '../../src/image/open-image.ts';
import { checkImageSpecArg } from '../../src/cli/image-arg.ts';
import { tempDir } from '../helpers/tmp.ts';
import { requirePeers } from '../helpers/peers.ts';

const silent = pino({ level: 'silent' });

test('NBD URIs: unix and tcp forms, the default port, and clear errors for the rest', () => {
  assert.deepEqual(parseNbdUri('nbd+unix:///vm?socket=/run/q.sock'), { address: { kind: 'unix', path: '/run/q.sock' }, exportName: 'vm' });
  assert.deepEqual(parseNbdUri('nbd://10.0.0.2:10810/disk%20a'), { address: { kind: 'tcp', host: '10.0.0.2', port: 10810 }, exportName: 'disk a' });
  assert.deepEqual(parseNbdUri('nbd://host/'), { address: { kind: 'tcp', host: 'host', port: 10809 }, exportName: '' });
  assert.deepEqual(parseNbdUri('nbd://[::1]:7/x').address, { kind: 'tcp', host: '::1', port: 7 });
  assert.throws(() => parseNbdUri('nbd+unix:///vm'), /has no socket/);
  assert.throws(() => parseNbdUri('nbds://host/x'), /nbds URIs are not supported/);
  assert.equal(parseImageSpec('nbd://h:1/x').kind, 'nbd');
  assert.deepEqual(parseImageSpec('/vm/a.qcow2', 'qcow2'), { kind: 'file', path: '/vm/a.qcow2', format: 'qcow2' });
  assert.throws(() => parseImageSpec('nbd://h:1/x', 'qcow2', '--image', true), (e: Error) => e instanceof UsageError && /applies to files only/.test(e.message));
  assert.throws(() => parseImageFormat('vmdk'), (e: Error) => e instanceof UsageError && /"vmdk" is not an image format; give raw or qcow2/.test(e.message));
});

test('a raw image that starts with the qcow2 magic is opened as raw, with a warning suggesting --format qcow2', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'guest-wrote-a-header.img');
  const bytes = Buffer.alloc(1 << 20);
  Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]).copy(bytes);
  writeFileSync(img, bytes);
  const lines: Array<{ msg: string }> = [];
  const log = pino({ level: 'warn' }, new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } }));
  const opened = await openImage({ spec: parseImageSpec(img), writable: false, log });
  try {
    assert.equal(opened.disk.size, 1 << 20, 'opened as raw: the file is the disk');
    const head = Buffer.alloc(4);
    await opened.disk.read(0, head);
    assert.deepEqual([...head], [0x51, 0x46, 0x49, 0xfb]);
  } finally {
    await opened.close();
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0]!.msg, /qcow2 magic but is opened as raw.*give --format qcow2/);
});

test('a block device is an image: its size from the kernel, read and written like a file', async (t) => {
  if (!requirePeers(t, 'losetup')) return;
  const dir = tempDir(t);
  const backing = join(dir, 'lv.img');
  writeFileSync(backing, Buffer.alloc(0));
  execFileSync('truncate', ['-s', '8M', backing]);
  let dev: string;
  try {
    dev = execFileSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' }).trim();
  } catch (e) {
    t.skip(`losetup cannot attach a loop device here: ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  try {
    assert.equal(checkImageSpecArg(dev, 'raw', { writable: true }), 8 << 20);
    const opened = await openImage({ spec: parseImageSpec(dev), writable: true, log: silent });
    try {
      assert.equal(opened.disk.size, 8 << 20);
      const data = randomBytes(65536);
      await opened.disk.write(3 << 20, data);
      await opened.disk.flush();
      const back = Buffer.alloc(65536);
      await opened.disk.read(3 << 20, back);
      assert.ok(back.equals(data));
    } finally {
      await opened.close();
    }
  } finally {
    execFileSync('losetup', ['-d', dev]);
  }
});

test('qcow2 checks before anything starts: a missing backing file and a corrupt header are bad input naming the cause', async (t) => {
  if (!requirePeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const orphan = join(dir, 'orphan.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', join(dir, 'gone.qcow2'), '-F', 'qcow2', orphan, '4M']);
  assert.throws(() => checkImageSpecArg(orphan, 'qcow2'), (e: Error) => e instanceof UsageError && /orphan\.qcow2 cannot be opened as qcow2: .*gone\.qcow2/.test(e.message) && !e.message.includes('\n'));
  const raw = join(dir, 'raw.img');
  writeFileSync(raw, Buffer.alloc(1 << 20));
  assert.throws(() => checkImageSpecArg(raw, 'qcow2'), (e: Error) => e instanceof UsageError && /not in qcow2 format/.test(e.message));
  assert.equal(checkImageSpecArg(raw, 'raw'), 1 << 20);
});
