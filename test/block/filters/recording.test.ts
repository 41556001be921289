// The recording filter: every successful request reaches the recorder with
// its arrival time; failed ones (the VM saw an error) do not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../../src/block/memory.ts';
import { ReadOnlyDisk } from '../../../src/block/filters/read-only.ts';
import { RecordingDisk, type RequestRecorder } from '../../../src/block/filters/recording.ts';

function recorder() {
  const seen: string[] = [];
  const r: RequestRecorder = {
    read: (at, off, data) => seen.push(`R ${at} ${off} ${data.length} ${data[0]}`),
    write: (at, off, data) => seen.push(`W ${at} ${off} ${data.length} ${data[0]}`),
    zero: (at, off, len) => seen.push(`Z ${at} ${off} ${len}`),
  };
  return { r, seen };
}

test('successful reads (with the bytes read), writes, zeroes and trims are recorded at their arrival time', async () => {
  const { r, seen } = recorder();
  let now = 10;
  const disk = new RecordingDisk(new MemoryDisk(1 << 20), r, () => now++);
  await disk.write(4096, Buffer.alloc(512, 9));
  const b = Buffer.alloc(512);
  await disk.read(4096, b);
  await disk.writeZeroes(0, 8192);
  await disk.trim(65536, 4096);
  await disk.flush();
  assert.deepEqual(seen, ['W 10 4096 512 9', 'R 11 4096 512 9', 'Z 12 0 8192', 'Z 13 65536 4096']);
});

test('failed requests are not recorded', async () => {
  const { r, seen } = recorder();
  const disk = new RecordingDisk(new ReadOnlyDisk(new MemoryDisk(1 << 20)), r, () => 0);
  await assert.rejects(disk.write(0, Buffer.alloc(512)));
  await assert.rejects(disk.trim(0, 4096));
  await assert.rejects(disk.read(2 << 20, Buffer.alloc(512)));
  assert.deepEqual(seen, []);
});
