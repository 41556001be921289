import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { FilterDisk } from '../../src/block/filter.ts';
import { ReadOnlyDisk } from '../../src/block/filters/read-only.ts';
import { StatsDisk } from '../../src/block/filters/stats.ts';
import { ExtentFlags, type Disk } from '../../src/block/disk.ts';
import { InvalidArgumentError, NoSpaceError, ReadOnlyError, ShutdownError } from '../../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../../src/nbd/errno.ts';
import { diskConformance, pattern } from './disk-conformance.ts';

// A filter that changes nothing must behave exactly like what it wraps, and so must a stack of them.
diskConformance('FilterDisk pass-through', async (size) => new FilterDisk(new MemoryDisk(size, { pageSize: 4096 })));
diskConformance('StatsDisk(FilterDisk(MemoryDisk))', async (size) => new StatsDisk(new FilterDisk(new MemoryDisk(size, { pageSize: 4096 }))));

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

  it('close closes the inner disk', async () => {
    const inner = new MemoryDisk(4096);
    await new FilterDisk(inner).close();
    await assert.rejects(inner.read(0, new Uint8Array(1)), ShutdownError);
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

describe('StatsDisk', () => {
  it('counts requests and bytes per operation exactly', async () => {
    const s = new StatsDisk(new MemoryDisk(1 << 20));
    await s.write(0, new Uint8Array(1000));
    await s.write(5000, new Uint8Array(24), { fua: true });
    await s.read(0, new Uint8Array(512));
    await s.read(10, new Uint8Array(0));
    await s.read(100, new Uint8Array(3));
    await s.trim(0, 4096);
    await s.writeZeroes(4096, 8192, { noHole: true });
    await s.writeZeroes(0, 7);
    await s.flush();
    await s.flush();
    await s.cache(0, 65536);
    await s.extents(0, 1 << 20);
    assert.deepEqual(s.snapshot(), {
      read: { count: 3, bytes: 515, errors: 0 },
      write: { count: 2, bytes: 1024, errors: 0 },
      trim: { count: 1, bytes: 4096, errors: 0 },
      zero: { count: 2, bytes: 8199, errors: 0 },
      flush: { count: 2, bytes: 0, errors: 0 },
      cache: { count: 1, bytes: 65536, errors: 0 },
      extents: { count: 1, bytes: 1 << 20, errors: 0 },
    });
  });

  it('counts failures as errors, not as requests or bytes, and rethrows them unchanged', async () => {
    const s = new StatsDisk(new MemoryDisk(4096));
    await assert.rejects(s.write(4000, new Uint8Array(200)), NoSpaceError);
    await assert.rejects(s.read(4000, new Uint8Array(200)), InvalidArgumentError);
    await assert.rejects(s.trim(0, 5000), NoSpaceError);
    await assert.rejects(s.writeZeroes(0, 5000), NoSpaceError);
    await assert.rejects(s.cache(0, 5000), InvalidArgumentError);
    await assert.rejects(s.extents(5000, 1), InvalidArgumentError);
    await s.close();
    await assert.rejects(s.flush(), ShutdownError);
    const snap = s.snapshot();
    for (const op of Object.values(snap)) {
      assert.equal(op.count, 0);
      assert.equal(op.bytes, 0);
      assert.equal(op.errors, 1);
    }
  });

  it('stacks: stats over read-only counts the refused writes; reset clears', async () => {
    const s = new StatsDisk(new ReadOnlyDisk(new MemoryDisk(4096)));
    assert.equal(s.capabilities.readOnly, true);
    await assert.rejects(s.write(0, Uint8Array.of(1)), isReadOnlyError);
    await s.read(0, new Uint8Array(10));
    assert.deepEqual(s.snapshot().write, { count: 0, bytes: 0, errors: 1 });
    assert.deepEqual(s.snapshot().read, { count: 1, bytes: 10, errors: 0 });
    s.reset();
    assert.ok(Object.values(s.snapshot()).every((o) => o.count === 0 && o.bytes === 0 && o.errors === 0));
  });

  it('snapshots are plain, detached objects', async () => {
    const s = new StatsDisk(new MemoryDisk(4096));
    const before = s.snapshot();
    await s.read(0, new Uint8Array(1));
    assert.equal(before.read.count, 0);
    assert.deepEqual(JSON.parse(JSON.stringify(s.snapshot())), s.snapshot());
  });
});

// Type-level: every filter is usable wherever a Disk is.
const _asDisk: Disk[] = [new FilterDisk(new MemoryDisk(1)), new ReadOnlyDisk(new MemoryDisk(1)), new StatsDisk(new MemoryDisk(1))];
void _asDisk;
