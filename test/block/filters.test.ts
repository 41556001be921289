import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { FilterDisk } from '../../src/block/filter.ts';
import { ReadOnlyDisk } from '../../src/block/filters/read-only.ts';
import { GateDisk } from '../../src/block/filters/gate.ts';
import type { WriteOptions } from '../../src/block/disk.ts';
import { ExtentFlags, type Disk } from '../../src/block/disk.ts';
import { InvalidArgumentError, ReadOnlyError, ShutdownError } from '../../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import { diskConformance, pattern } from './disk-conformance.ts';

// A filter that changes nothing must behave exactly like what it wraps, and so must a stack of them.
diskConformance('FilterDisk pass-through', async (size) => new FilterDisk(new MemoryDisk(size, { pageSize: 4096 })));
diskConformance('FilterDisk(FilterDisk(MemoryDisk))', async (size) => new FilterDisk(new FilterDisk(new MemoryDisk(size, { pageSize: 4096 }))));

const isReadOnlyError = (e: unknown) => e instanceof ReadOnlyError && nbdErrnoOf(e) === NbdErrno.EPERM && e.code === 'FLIMCD_ERR_READ_ONLY';

describe('FilterDisk', () => {
  it('forwards size, capabilities and block size of the inner disk', () => {
    const inner = new MemoryDisk(12345);
    const f = new FilterDisk(inner);
    assert.equal(f.size, 12345);
    assert.equal(f.capabilities, inner.capabilities);
    assert.equal(f.blockSize, inner.blockSize);
  });

  it('lets a subclass override one method and keeps the rest', async () => {
    class Offsetting extends FilterDisk {
      override get size(): number {
        return this.inner.size - 4096;
      }
      override read(offset: number, into: Uint8Array): Promise<void> {
        return this.inner.read(offset + 4096, into);
      }
    }
    const inner = new MemoryDisk(8192);
    await inner.write(4096, Uint8Array.of(5, 6));
    const f = new Offsetting(inner);
    assert.equal(f.size, 4096);
    const b = new Uint8Array(2);
    await f.read(0, b);
    assert.deepEqual(b, Uint8Array.of(5, 6));
    await f.write(0, Uint8Array.of(1));
    await inner.read(0, b);
    assert.deepEqual(b, Uint8Array.of(1, 0));
  });

  it('passes writev chunks through unjoined, but a subclass that overrides write() sees them joined', async () => {
    const seen: Array<readonly Uint8Array[]> = [];
    class ChunkSpy extends MemoryDisk {
      override writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
        seen.push(chunks);
        return super.writev(offset, chunks);
      }
    }
    const chunks = [Uint8Array.of(1, 2), Uint8Array.of(3)];
    const inner = new ChunkSpy(8192);
    await new FilterDisk(new FilterDisk(inner)).writev(10, chunks);
    assert.equal(seen.length, 1);
    assert.equal(seen[0], chunks, 'the same chunk list reached the backend');

    const writes: Uint8Array[] = [];
    class Watching extends FilterDisk {
      override write(offset: number, data: Uint8Array, opts?: WriteOptions): Promise<void> {
        writes.push(data);
        return this.inner.write(offset, data, opts);
      }
    }
    await new Watching(inner).writev(100, chunks);
    assert.deepEqual(writes.map((w) => [...w]), [[1, 2, 3]]);
    assert.equal(seen.length, 1, 'the joined write went through write()');
    const back = new Uint8Array(3);
    await inner.read(100, back);
    assert.deepEqual(back, Uint8Array.of(1, 2, 3));
  });

  it('close closes the inner disk', async () => {
    const inner = new MemoryDisk(4096);
    await new FilterDisk(inner).close();
    await assert.rejects(inner.read(0, new Uint8Array(1)), ShutdownError);
  });
});

describe('GateDisk', () => {
  it('holds a writev like a write until the gate opens, and refuses it once shut', async () => {
    const inner = new MemoryDisk(8192);
    const gate = new GateDisk(inner, 'held');
    let done = false;
    const pending = gate.writev(0, [Uint8Array.of(1), Uint8Array.of(2)]).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    assert.equal(gate.waiting, 1);
    gate.open();
    await pending;
    const back = new Uint8Array(2);
    await inner.read(0, back);
    assert.deepEqual(back, Uint8Array.of(1, 2));
    gate.shut();
    await assert.rejects(gate.writev(0, [Uint8Array.of(1), Uint8Array.of(2)]), ShutdownError);
  });
});

describe('ReadOnlyDisk', () => {
  it('advertises read-only and no modifying capabilities, leaving the inner disk alone', () => {
    const inner = new MemoryDisk(4096);
    const ro = new ReadOnlyDisk(inner);
    assert.equal(ro.capabilities.readOnly, true);
    assert.equal(ro.capabilities.canTrim, false);
    assert.equal(ro.capabilities.canZero, false);
    assert.equal(ro.capabilities.canFastZero, false);
    assert.equal(ro.capabilities.canFlush, inner.capabilities.canFlush);
    assert.equal(ro.capabilities.canExtents, inner.capabilities.canExtents);
    assert.equal(ro.capabilities.canCache, inner.capabilities.canCache);
    assert.equal(inner.capabilities.readOnly, false);
    assert.equal(ro.size, 4096);
  });

  it('refuses write, trim and writeZeroes with ReadOnlyError (EPERM) and changes nothing', async () => {
    const inner = new MemoryDisk(65536, { pageSize: 4096 });
    await inner.write(0, pattern(65536, 1));
    const ro = new ReadOnlyDisk(inner);
    await assert.rejects(ro.write(0, Uint8Array.of(1)), isReadOnlyError);
    await assert.rejects(ro.write(0, Uint8Array.of(1), { fua: true }), isReadOnlyError);
    await assert.rejects(ro.writev(0, [Uint8Array.of(1), Uint8Array.of(2)]), isReadOnlyError);
    await assert.rejects(ro.trim(0, 4096), isReadOnlyError);
    await assert.rejects(ro.writeZeroes(0, 4096, { noHole: true }), isReadOnlyError);
    await assert.rejects(ro.writeZeroes(0, 4096, { fastZero: true }), isReadOnlyError);
    // Even out-of-range modifications are refused as read-only first.
    await assert.rejects(ro.write(1 << 30, Uint8Array.of(1)), isReadOnlyError);
    const back = new Uint8Array(65536);
    await inner.read(0, back);
    assert.deepEqual(back, pattern(65536, 1));
  });

  it('passes reads, extents, flush and cache through', async () => {
    const inner = new MemoryDisk(65536, { pageSize: 4096 });
    await inner.write(8192, pattern(4096, 2));
    const ro = new ReadOnlyDisk(inner);
    const b = new Uint8Array(4096);
    await ro.read(8192, b);
    assert.deepEqual(b, pattern(4096, 2));
    assert.deepEqual(await ro.extents(0, 16384), await inner.extents(0, 16384));
    assert.equal((await ro.extents(0, 4096))[0]!.flags, ExtentFlags.HOLE | ExtentFlags.ZERO);
    await ro.flush();
    await ro.cache(0, 4096);
    await assert.rejects(ro.read(65536, new Uint8Array(1)), InvalidArgumentError);
  });
});

// Type-level: every filter is usable wherever a Disk is.
const _asDisk: Disk[] = [new FilterDisk(new MemoryDisk(1)), new ReadOnlyDisk(new MemoryDisk(1))];
void _asDisk;
