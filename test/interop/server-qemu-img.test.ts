// qemu-img against our export: convert from and to it, compare with the backing file, map showing holes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, ftruncateSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk } from '../../src/block/file.ts';
import { ReadOnlyDisk } from '../../src/block/filters/read-only.ts';
import { requirePeers, run, runOk } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startServer } from '../helpers/nbd-server.ts';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
/** Data regions of the sparse test image; everything else is a hole. */
const DATA = [
  { offset: 0, length: 1 * MiB },
  { offset: 4 * MiB, length: 2 * MiB },
  { offset: 15 * MiB, length: 1 * MiB },
];

function makeSparseImage(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, SIZE);
  for (const [i, r] of DATA.entries()) {
    const b = Buffer.alloc(r.length);
    for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((j * 2654435761 + i) >>> 0, j);
    writeSync(fd, b, 0, b.length, r.offset);
  }
  closeSync(fd);
}

test('qemu-img convert from our export, compare with the backing file, map shows the holes', async (t) => {
  if (!requirePeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  makeSparseImage(src);
  const disk = new ReadOnlyDisk(await FileDisk.open(src, { readOnly: true }));
  t.after(() => disk.close());
  const { uri } = await startServer(t, dir, [{ name: 'src', disk }]);

  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, src]);
  const out = join(dir, 'out.img');
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out]);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, out]);
  assert.ok(readFileSync(out).equals(readFileSync(src)));
  const q = join(dir, 'out.qcow2');
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', uri, q]);
  await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', q, src]);

  const map = JSON.parse((await runOk('qemu-img', ['map', '--output=json', '-f', 'raw', uri])).stdout) as Array<{ start: number; length: number; data: boolean; zero: boolean }>;
  const dataRanges = map.filter((m) => m.data).map((m) => ({ offset: m.start, length: m.length }));
  assert.deepEqual(dataRanges, DATA, `map: ${JSON.stringify(map)}`);
  for (const m of map.filter((x) => !x.data)) assert.equal(m.zero, true, 'holes read as zero');
});

test('qemu-img compare notices a difference (the check can fail)', async (t) => {
  if (!requirePeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  makeSparseImage(src);
  const other = join(dir, 'other.img');
  makeSparseImage(other);
  const fd = openSync(other, 'r+');
  writeSync(fd, Buffer.from([0xff]), 0, 1, 9 * MiB + 3);
  closeSync(fd);
  const disk = await FileDisk.open(src, { readOnly: true });
  t.after(() => disk.close());
  const { uri } = await startServer(t, dir, [{ name: '', disk }]);
  const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, other]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`mismatch at offset ${9 * MiB}!`));
});

test('qemu-img convert into our export', async (t) => {
  if (!requirePeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  makeSparseImage(src);
  const dst = join(dir, 'dst.img');
  const fd = openSync(dst, 'w');
  // Pre-fill with junk so a skipped zero region would be caught.
  writeSync(fd, Buffer.alloc(SIZE, 0xee), 0, SIZE, 0);
  closeSync(fd);
  const disk = await FileDisk.open(dst, {});
  t.after(() => disk.close());
  const { uri } = await startServer(t, dir, [{ name: 'dst', disk }]);
  await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, uri]);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, src]);
  await disk.flush();
  assert.ok(readFileSync(dst).equals(readFileSync(src)), 'target file equals source byte for byte');
});
