// QemuGuest's command line for a local disk: raw by default (unchanged), qcow2 on request, and a
// mirror target's detect-zeroes=unmap with discard=unmap on both nodes (bench:qemu's peer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QemuGuest, type QemuGuestOptions } from '../../src/qemu/process.ts';

const base: Omit<QemuGuestOptions, 'disk'> = { name: 't', dir: '/tmp', kernel: 'k', initrd: 'i', append: 'a', diskBytes: 64 << 20 };
const blockdevs = (o: QemuGuestOptions) => {
  const a = QemuGuest.args(o, 'q.sock', 's.sock');
  return a.flatMap((x, i) => (x === '-blockdev' ? [a[i + 1]!] : []));
};

test('a local disk is raw by default, with no detect-zeroes', () => {
  assert.deepEqual(blockdevs({ ...base, disk: { file: '/d.img' } }), ['driver=file,filename=/d.img,node-name=file0,cache.direct=off', 'driver=raw,file=file0,node-name=disk0']);
});

test('a qcow2 mirror target gets its format and detect-zeroes=unmap with discard=unmap', () => {
  assert.deepEqual(blockdevs({ ...base, disk: { file: '/t.qcow2', format: 'qcow2', detectZeroes: 'unmap' } }), [
    'driver=file,filename=/t.qcow2,node-name=file0,cache.direct=off,discard=unmap',
    'driver=qcow2,file=file0,node-name=disk0,detect-zeroes=unmap,discard=unmap',
  ]);
});
