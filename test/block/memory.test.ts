import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { ExtentFlags } from '../../src/block/disk.ts';
import { ReadOnlyError } from '../../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import { diskConformance, pattern } from './disk-conformance.ts';

diskConformance('MemoryDisk', async (size) => new MemoryDisk(size, { pageSize: 4096 }));
diskConformance('MemoryDisk (default pages)', async (size) => new MemoryDisk(size));

const HZ = ExtentFlags.HOLE | ExtentFlags.ZERO;

describe('MemoryDisk', () => {
  it('allocates pages only where written and frees them on whole-page trim', async () => {
    const disk = new MemoryDisk(1 << 20, { pageSize: 4096 });
    assert.equal(disk.allocatedBytes, 0);
    await disk.write(4095, Uint8Array.of(1, 2)); // straddles pages 0 and 1
    assert.equal(disk.allocatedBytes, 8192);
    await disk.trim(4096, 4096);
    assert.equal(disk.allocatedBytes, 4096);
    const b = new Uint8Array(2);
    await disk.read(4095, b);
    assert.deepEqual(b, Uint8Array.of(1, 0));
    await disk.trim(0, 100); // partial page: zeroed in place, still allocated
    assert.equal(disk.allocatedBytes, 4096);
  });

  it('reports holes and data, merged and clipped to the request', async () => {
    const disk = new MemoryDisk(64 * 1024, { pageSize: 4096 });
    await disk.write(8192, pattern(8192, 1));
    assert.deepEqual(await disk.extents(0, 65536), [
      { offset: 0, length: 8192, flags: HZ },
      { offset: 8192, length: 8192, flags: 0 },
      { offset: 16384, length: 65536 - 16384, flags: HZ },
    ]);
    assert.deepEqual(await disk.extents(10000, 100), [{ offset: 10000, length: 100, flags: 0 }]);
    assert.deepEqual(await disk.extents(100, 9000), [
      { offset: 100, length: 8092, flags: HZ },
      { offset: 8192, length: 908, flags: 0 },
    ]);
  });

  it('writeZeroes with noHole keeps pages allocated; without it frees them', async () => {
    const disk = new MemoryDisk(16384, { pageSize: 4096 });
    await disk.writeZeroes(0, 8192, { noHole: true });
    assert.equal(disk.allocatedBytes, 8192);
    await disk.writeZeroes(0, 8192);
    assert.equal(disk.allocatedBytes, 0);
  });

  it('read-only refuses modifications with EPERM', async () => {
    const disk = new MemoryDisk(4096, { readOnly: true });
    assert.equal(disk.capabilities.readOnly, true);
    for (const p of [disk.write(0, Uint8Array.of(1)), disk.trim(0, 1), disk.writeZeroes(0, 1)]) {
      await assert.rejects(p, (e: unknown) => e instanceof ReadOnlyError && nbdErrnoOf(e) === NbdErrno.EPERM);
    }
    await disk.read(0, new Uint8Array(10));
  });
});
