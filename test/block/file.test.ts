import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk, type FileDiskOptions } from '../../src/block/file.ts';
import { sparse, sparseLoadError, type SparseOps } from '../../src/block/sparse-native.ts';
import { ExtentFlags } from '../../src/block/disk.ts';
import { FlimcdError, InvalidArgumentError, NotSupportedError, ReadOnlyError, ShutdownError } from '../../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import { tempDir } from '../helpers/tmp.ts';
import { checkExtentShape, diskConformance, pattern } from './disk-conformance.ts';

const HZ = ExtentFlags.HOLE | ExtentFlags.ZERO;
const MiB = 1 << 20;

diskConformance('FileDisk (native)', (size, dir) => FileDisk.open(join(dir, 'disk.img'), { create: true, size }));
diskConformance('FileDisk (pure JS)', (size, dir) => FileDisk.open(join(dir, 'disk.img'), { create: true, size, sparse: null }));

/** Skips (or, under CI, fails) a test that needs the addon. */
function needNative(t: TestContext): SparseOps | undefined {
  if (sparse) return sparse;
  // Under CI the addon must be there, unless the run deliberately tests the fallback.
  if (process.env.CI && !process.env.FLIMCD_NO_NATIVE) assert.fail(`native sparse helper missing under CI: ${sparseLoadError}`);
  t.skip(`native sparse helper not loaded: ${sparseLoadError}`);
  return undefined;
}

async function openDisk(t: TestContext, opts: FileDiskOptions & { size: number }): Promise<{ disk: FileDisk; path: string }> {
  const path = join(tempDir(t), 'disk.img');
  const disk = await FileDisk.open(path, { create: true, ...opts });
  t.after(() => disk.close());
  return { disk, path };
}

/** Allocated bytes of the file, as the filesystem accounts them. */
const allocated = (path: string) => statSync(path).blocks * 512;

/** Counts fdatasync calls of a FileDisk by wrapping its FileHandle's method. */
function countSyncs(disk: FileDisk): { n: number } {
  const counter = { n: 0 };
  const fh = (disk as unknown as { fh: { datasync: () => Promise<void> } }).fh;
  const orig = fh.datasync.bind(fh);
  fh.datasync = () => {
    counter.n++;
    return orig();
  };
  return counter;
}

function sysError(code: string): Error {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

describe('native sparse helper', () => {
  it('is loaded under CI', (t) => {
    if (!process.env.CI || process.env.FLIMCD_NO_NATIVE) {
      t.skip(`not required: CI unset or FLIMCD_NO_NATIVE set (loaded: ${sparse !== undefined}${sparseLoadError ? `, ${sparseLoadError}` : ''})`);
      return;
    }
    assert.ok(sparse, `native sparse helper must load under CI: ${sparseLoadError}`);
    assert.equal(typeof sparse.readCached, 'function', 'the build has readCached');
  });

  it('readCached copies what the page cache holds on the calling thread: EOF, short reads, -errno', (t) => {
    const s = needNative(t);
    if (!s?.readCached) return;
    const path = join(tempDir(t), 'f');
    const data = pattern(3 * 4096, 3);
    writeFileSync(path, data); // just written: in the page cache
    const fd = openSync(path, 'r');
    t.after(() => closeSync(fd));
    const into = new Uint8Array(8192);
    assert.equal(s.readCached(fd, into.subarray(10, 4106), 100), 4096);
    assert.deepEqual(into.subarray(10, 4106), data.subarray(100, 4196));
    assert.equal(s.readCached(fd, into, 3 * 4096 - 5), 5, 'short at EOF');
    assert.equal(s.readCached(fd, into, 3 * 4096), 0, 'EOF');
    const wfd = openSync(join(tempDir(t), 'w'), 'w');
    t.after(() => closeSync(wfd));
    assert.equal(s.readCached(wfd, into, 0), -9, 'a write-only fd: -EBADF');
    assert.throws(() => s.readCached!(fd, [1, 2] as unknown as Uint8Array, 0), TypeError);
    assert.throws(() => s.readCached!(fd, into, -1), RangeError);
  });

  it('seekData/seekHole find data and holes and return -1 on ENXIO', async (t) => {
    const s = needNative(t);
    if (!s) return;
    const path = join(tempDir(t), 'f');
    const fd = openSync(path, 'w+');
    t.after(() => closeSync(fd));
    ftruncateSync(fd, 8 * MiB);
    writeSync(fd, pattern(64 * 1024, 1), 0, 64 * 1024, 3 * MiB);
    assert.equal(await s.seekData(fd, 0), 3 * MiB);
    assert.equal(await s.seekHole(fd, 3 * MiB), 3 * MiB + 64 * 1024);
    assert.equal(await s.seekHole(fd, 0), 0);
    assert.equal(await s.seekData(fd, 4 * MiB), -1);
    assert.equal(await s.seekHole(fd, 8 * MiB), -1);
    assert.equal(await s.seekData(fd, BigInt(3 * MiB) as unknown as number), 3 * MiB);
  });

  it('rejects with Node-style system errors', async (t) => {
    const s = needNative(t);
    if (!s) return;
    const path = join(tempDir(t), 'f');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r');
    t.after(() => closeSync(fd));
    // fallocate on a read-only fd: EBADF.
    await assert.rejects(s.punchHole(fd, 0, 4096), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.errno === -9 && e.syscall === 'fallocate');
    assert.throws(() => s.punchHole(fd, -1, 1), RangeError);
    assert.throws(() => s.zeroRange(fd, 0.5, 1), RangeError);
  });
});

describe('FileDisk', () => {
  it('creates a sparse file of the requested size and grows but never shrinks one', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'a.img');
    const disk = await FileDisk.open(path, { create: true, size: 64 * MiB });
    assert.equal(disk.size, 64 * MiB);
    assert.equal(statSync(path).size, 64 * MiB);
    assert.ok(allocated(path) < MiB, 'created sparse');
    await disk.close();

    const grown = await FileDisk.open(path, { size: 128 * MiB });
    assert.equal(grown.size, 128 * MiB);
    await grown.close();
    await assert.rejects(FileDisk.open(path, { size: MiB }), InvalidArgumentError);
    assert.equal(statSync(path).size, 128 * MiB);

    const again = await FileDisk.open(path);
    assert.equal(again.size, 128 * MiB);
    await again.close();
  });

  it('fails to open a missing file without create, and a directory', async (t) => {
    const dir = tempDir(t);
    await assert.rejects(FileDisk.open(join(dir, 'nope.img')), FlimcdError);
    await assert.rejects(FileDisk.open(dir, { readOnly: true }), InvalidArgumentError);
    await assert.rejects(FileDisk.open(join(dir, 'x'), { readOnly: true, create: true }), InvalidArgumentError);
  });

  it('opens an existing image read-only: reads work, modifications fail with EPERM', async (t) => {
    const path = join(tempDir(t), 'ro.img');
    const content = pattern(10000, 9);
    writeFileSync(path, content);
    const disk = await FileDisk.open(path, { readOnly: true });
    t.after(() => disk.close());
    assert.equal(disk.size, 10000);
    assert.equal(disk.capabilities.readOnly, true);
    assert.equal(disk.capabilities.canTrim, false);
    assert.equal(disk.capabilities.canFastZero, false);
    const back = new Uint8Array(10000);
    await disk.read(0, back);
    assert.deepEqual(back, content);
    for (const p of [disk.write(0, Uint8Array.of(1)), disk.trim(0, 10), disk.writeZeroes(0, 10)]) {
      await assert.rejects(p, (e: unknown) => e instanceof ReadOnlyError && nbdErrnoOf(e) === NbdErrno.EPERM);
    }
    await disk.flush();
    assert.deepEqual(new Uint8Array(readFileSync(path)), content);
  });

  it('FUA syncs once per request; plain writes do not', async (t) => {
    const { disk, path } = await openDisk(t, { size: MiB });
    const syncs = countSyncs(disk);
    await disk.write(10, pattern(100, 1));
    assert.equal(syncs.n, 0);
    await disk.write(10, pattern(100, 2), { fua: true });
    assert.equal(syncs.n, 1);
    await disk.trim(0, 4096, { fua: true });
    await disk.writeZeroes(0, 4096, { fua: true });
    assert.equal(syncs.n, 3);
    await disk.flush();
    assert.equal(syncs.n, 4);
    assert.deepEqual(new Uint8Array(readFileSync(path)).subarray(4096, 4096 + 10), new Uint8Array(10));
  });

  it('handles offsets beyond 4 GiB', async (t) => {
    const size = 8 * 1024 * MiB + 4096;
    const { disk } = await openDisk(t, { size });
    const off = 6 * 1024 * MiB + 123;
    const data = pattern(9000, 5);
    await disk.write(off, data);
    const back = new Uint8Array(9000);
    await disk.read(off, back);
    assert.deepEqual(back, data);
    await disk.write(size - 5, pattern(5, 6));
    const tail = new Uint8Array(5);
    await disk.read(size - 5, tail);
    assert.deepEqual(tail, pattern(5, 6));
    if (disk.native) {
      const ext = await disk.extents(off - MiB, 2 * MiB);
      checkExtentShape(ext, off - MiB, 2 * MiB);
      assert.equal(ext[0]!.flags, HZ);
      assert.ok(ext.some((e) => e.flags === 0 && e.offset <= off && e.offset + e.length >= off + 9000));
      await disk.trim(off - 123, 16384);
      await disk.read(off, back);
      assert.ok(back.every((b) => b === 0));
    }
  });

  it('serves many concurrent reads and writes', async (t) => {
    const { disk } = await openDisk(t, { size: 4 * MiB });
    const n = 64;
    const len = 4096 * 3 + 17;
    await Promise.all(Array.from({ length: n }, (_, i) => disk.write(i * 60000, pattern(len, i))));
    const backs = Array.from({ length: n }, () => new Uint8Array(len));
    await Promise.all(backs.map((b, i) => disk.read(i * 60000, b)));
    backs.forEach((b, i) => assert.deepEqual(b, pattern(len, i)));
  });

  it('close lets requests in flight finish on the same fd', async (t) => {
    // Pure-JS zeroing of 16 MiB is 16 sequential writes: without the wait, close would land between them.
    const { disk } = await openDisk(t, { size: 64 * MiB, sparse: null });
    const data = pattern(MiB, 3);
    await disk.write(0, pattern(16 * MiB, 4));
    const ops = [disk.writeZeroes(0, 16 * MiB), ...Array.from({ length: 8 }, (_, i) => disk.write((20 + i) * MiB, data))];
    const close = disk.close();
    await Promise.all(ops);
    await close;
    const again = await FileDisk.open(disk.path, { readOnly: true });
    t.after(() => again.close());
    const zero = new Uint8Array(16 * MiB);
    await again.read(0, zero);
    assert.ok(zero.every((b) => b === 0));
    const back = new Uint8Array(MiB);
    for (let i = 0; i < 8; i++) {
      await again.read((20 + i) * MiB, back);
      assert.deepEqual(back, data);
    }
  });

  describe('with the native helper', () => {
    it('trim and writeZeroes punch holes that free space and show as HOLE|ZERO', async (t) => {
      if (!needNative(t)) return;
      const { disk, path } = await openDisk(t, { size: 8 * MiB });
      assert.equal(disk.native, true);
      assert.equal(disk.capabilities.canFastZero, true);
      await disk.write(0, pattern(8 * MiB, 1));
      await disk.flush();
      const full = allocated(path);
      assert.ok(full >= 8 * MiB);

      await disk.trim(MiB, 2 * MiB);
      const afterTrim = allocated(path);
      assert.ok(afterTrim <= full - 2 * MiB, `trim freed space (${full} -> ${afterTrim})`);
      await disk.writeZeroes(4 * MiB, MiB);
      const afterZero = allocated(path);
      assert.ok(afterZero <= afterTrim - MiB, `writeZeroes freed space (${afterTrim} -> ${afterZero})`);
      await disk.writeZeroes(6 * MiB, MiB, { fastZero: true });
      assert.ok(allocated(path) <= afterZero - MiB, 'fast zero freed space');

      assert.deepEqual(await disk.extents(0, 8 * MiB), [
        { offset: 0, length: MiB, flags: 0 },
        { offset: MiB, length: 2 * MiB, flags: HZ },
        { offset: 3 * MiB, length: MiB, flags: 0 },
        { offset: 4 * MiB, length: MiB, flags: HZ },
        { offset: 5 * MiB, length: MiB, flags: 0 },
        { offset: 6 * MiB, length: MiB, flags: HZ },
        { offset: 7 * MiB, length: MiB, flags: 0 },
      ]);
      const back = new Uint8Array(8 * MiB);
      await disk.read(0, back);
      const want = pattern(8 * MiB, 1);
      want.fill(0, MiB, 3 * MiB).fill(0, 4 * MiB, 5 * MiB).fill(0, 6 * MiB, 7 * MiB);
      assert.deepEqual(back, want);
    });

    it('writeZeroes with noHole keeps the allocation', async (t) => {
      if (!needNative(t)) return;
      const { disk, path } = await openDisk(t, { size: 4 * MiB });
      await disk.write(0, pattern(4 * MiB, 2));
      await disk.flush();
      const before = allocated(path);
      await disk.writeZeroes(MiB, 2 * MiB, { noHole: true });
      assert.ok(allocated(path) >= before, `allocation kept (${before} -> ${allocated(path)})`);
      const back = new Uint8Array(2 * MiB);
      await disk.read(MiB, back);
      assert.ok(back.every((b) => b === 0));
    });

    it('extents are clipped to the request, merged and contiguous from the offset', async (t) => {
      if (!needNative(t)) return;
      const { disk } = await openDisk(t, { size: 16 * MiB });
      await disk.write(2 * MiB, pattern(MiB, 3));
      await disk.write(3 * MiB, pattern(MiB, 4)); // adjacent data merges into one extent
      await disk.write(10 * MiB, pattern(4096, 5));
      assert.deepEqual(await disk.extents(0, 16 * MiB), [
        { offset: 0, length: 2 * MiB, flags: HZ },
        { offset: 2 * MiB, length: 2 * MiB, flags: 0 },
        { offset: 4 * MiB, length: 6 * MiB, flags: HZ },
        { offset: 10 * MiB, length: 4096, flags: 0 },
        { offset: 10 * MiB + 4096, length: 6 * MiB - 4096, flags: HZ },
      ]);
      assert.deepEqual(await disk.extents(3 * MiB + 5, 2 * MiB), [
        { offset: 3 * MiB + 5, length: MiB - 5, flags: 0 },
        { offset: 4 * MiB, length: MiB + 5, flags: HZ },
      ]);
      assert.deepEqual(await disk.extents(5 * MiB, 100), [{ offset: 5 * MiB, length: 100, flags: HZ }]);
      assert.deepEqual(await disk.extents(2 * MiB + 1, 1), [{ offset: 2 * MiB + 1, length: 1, flags: 0 }]);
    });

    it('cache asks the kernel to read the range ahead (fadvise WILLNEED) and changes no data', async (t) => {
      const real = needNative(t);
      if (!real) return;
      const advised: Array<[number, number]> = [];
      const recording: SparseOps = { ...real, willNeed: (fd, off, len) => (advised.push([off, len]), real.willNeed(fd, off, len)) };
      const { disk } = await openDisk(t, { size: 4 * MiB, sparse: recording });
      await disk.write(MiB, pattern(MiB, 5));
      await disk.cache(MiB + 4096, MiB - 4096);
      await disk.cache(0, 0);
      assert.deepEqual(advised, [[MiB + 4096, MiB - 4096]], 'one hint for the range asked, none for an empty one');
      const back = new Uint8Array(MiB);
      await disk.read(MiB, back);
      assert.deepEqual(back, pattern(MiB, 5));
      // Past the end is refused before any hint, as a read would be.
      await assert.rejects(disk.cache(4 * MiB - 4096, 8192), InvalidArgumentError);
      assert.equal(advised.length, 1);
    });

    it('cache passes on a real I/O failure of the hint', async (t) => {
      const real = needNative(t);
      if (!real) return;
      const failing: SparseOps = { ...real, willNeed: async () => { throw sysError('EIO'); } };
      const { disk } = await openDisk(t, { size: MiB, sparse: failing });
      await assert.rejects(disk.cache(0, 4096), (e: unknown) => e instanceof FlimcdError && e.code === 'FLIMCD_ERR_IO');
    });

    it('close waits for native calls in flight before releasing the fd', async (t) => {
      const real = needNative(t);
      if (!real) return;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow: SparseOps = {
        ...real,
        punchHole: async (fd, off, len) => {
          await gate;
          return real.punchHole(fd, off, len); // fails with EBADF if the fd was closed under us
        },
      };
      const { disk } = await openDisk(t, { size: MiB, sparse: slow });
      await disk.write(0, pattern(MiB, 1));
      const trim = disk.trim(0, MiB);
      let closed = false;
      const close = disk.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, false, 'close is waiting');
      await assert.rejects(disk.read(0, new Uint8Array(1)), ShutdownError);
      release();
      await trim;
      await close;
      assert.equal(closed, true);
    });
  });

  describe('without the native helper', () => {
    it('zeroes by writing, keeps fastZero unsupported and reports everything as data', async (t) => {
      const { disk, path } = await openDisk(t, { size: 4 * MiB, sparse: null });
      assert.equal(disk.native, false);
      assert.equal(disk.capabilities.canFastZero, false);
      assert.equal(disk.capabilities.canTrim, true);
      await disk.write(0, pattern(4 * MiB, 7));
      await assert.rejects(disk.writeZeroes(0, MiB, { fastZero: true }), (e: unknown) => e instanceof NotSupportedError && nbdErrnoOf(e) === NbdErrno.ENOTSUP);
      const back = new Uint8Array(MiB);
      await disk.read(0, back);
      assert.deepEqual(back, pattern(4 * MiB, 7).subarray(0, MiB), 'refused fast zero left the data alone');

      await disk.trim(MiB + 1, MiB + 5);
      await disk.writeZeroes(3 * MiB, MiB);
      const all = new Uint8Array(4 * MiB);
      await disk.read(0, all);
      const want = pattern(4 * MiB, 7);
      want.fill(0, MiB + 1, 2 * MiB + 6).fill(0, 3 * MiB, 4 * MiB);
      assert.deepEqual(all, want);
      assert.deepEqual(await disk.extents(100, 3 * MiB), [{ offset: 100, length: 3 * MiB, flags: 0 }]);
      assert.ok(allocated(path) >= 4 * MiB, 'zeroes were written, nothing punched');
    });

    it('falls back at run time when the filesystem refuses fallocate and lseek', async (t) => {
      const calls: string[] = [];
      const refusing: SparseOps = {
        punchHole: async () => { calls.push('punch'); throw sysError('EOPNOTSUPP'); },
        zeroRange: async () => { calls.push('zero'); throw sysError('EOPNOTSUPP'); },
        seekData: async () => { throw sysError('EINVAL'); },
        seekHole: async () => { throw sysError('EINVAL'); },
        mapExtents: async () => { calls.push('map'); throw sysError('EINVAL'); },
        willNeed: async () => { calls.push('fadvise'); throw sysError('ENOSYS'); },
      };
      const { disk } = await openDisk(t, { size: MiB, sparse: refusing });
      assert.equal(disk.capabilities.canFastZero, true); // cannot know before trying
      await disk.write(0, pattern(MiB, 8));
      await assert.rejects(disk.writeZeroes(0, 4096, { fastZero: true }), NotSupportedError);
      await disk.trim(0, 4096);
      await disk.writeZeroes(8192, 4096, { noHole: true });
      await disk.cache(0, 10);
      const back = new Uint8Array(3 * 4096);
      await disk.read(0, back);
      const want = pattern(MiB, 8).slice(0, 3 * 4096);
      want.fill(0, 0, 4096).fill(0, 8192);
      assert.deepEqual(back, want);
      // Each refused call is tried once, then remembered.
      assert.deepEqual(calls, ['punch', 'zero', 'fadvise']);
      assert.deepEqual(await disk.extents(0, MiB), [{ offset: 0, length: MiB, flags: 0 }]);
      assert.deepEqual(await disk.extents(0, MiB), [{ offset: 0, length: MiB, flags: 0 }]);
      assert.deepEqual(calls, ['punch', 'zero', 'fadvise', 'map']);
    });

    it('reads through the pool what readCached leaves: short, not cached, or unsupported (then never asked again)', async (t) => {
      const answers: Array<'half' | 'eagain' | 'eopnotsupp'> = ['half', 'eagain', 'eopnotsupp', 'half'];
      const calls: string[] = [];
      const partial: SparseOps = {
        ...(sparse ?? ({} as SparseOps)),
        readCached: (fd, into, offset) => {
          const a = answers.shift() ?? 'half';
          calls.push(a);
          if (a === 'eagain') return -11;
          if (a === 'eopnotsupp') return -95;
          const half = into.subarray(0, into.length >> 1);
          return readSync(fd, half, 0, half.length, offset);
        },
      };
      const { disk } = await openDisk(t, { size: MiB, sparse: partial });
      await disk.write(0, pattern(MiB, 9));
      const want = pattern(MiB, 9);
      for (const [off, len] of [[5, 4096], [70_000, 65536], [MiB - 4097, 4097], [0, 8192]] as const) {
        const back = new Uint8Array(len);
        await disk.read(off, back);
        assert.deepEqual(back, want.subarray(off, off + len), `read ${off}+${len}`);
      }
      assert.deepEqual(calls, ['half', 'eagain', 'eopnotsupp'], 'EOPNOTSUPP is remembered: the last read does not ask');
    });

    it('maps other native failures to FlimcdErrors', async (t) => {
      const failing: SparseOps = {
        ...(sparse ?? ({} as SparseOps)),
        punchHole: async () => { throw sysError('EIO'); },
        zeroRange: async () => { throw sysError('ENOSPC'); },
      };
      const { disk } = await openDisk(t, { size: MiB, sparse: failing });
      await assert.rejects(disk.trim(0, 10), (e: unknown) => e instanceof FlimcdError && e.code === 'FLIMCD_ERR_IO');
      await assert.rejects(disk.writeZeroes(0, 10, { noHole: true }), (e: unknown) => e instanceof FlimcdError && e.code === 'FLIMCD_ERR_NO_SPACE');
    });
  });
});
