/**
 * Behaviour every writable Disk must show, checked against a plain byte-array
 * model. Each backend's test file registers it with its own factory.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ExtentFlags, type Disk, type Extent } from '../../src/block/disk.ts';
import { InvalidArgumentError, NoSpaceError, ShutdownError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeChunks } from '../../src/block/writev.ts';

export type DiskFactory = (size: number, dir: string) => Promise<Disk>;

/** Deterministic PRNG (mulberry32) so a failing sequence replays. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pattern(length: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = 1 + Math.floor(r() * 255);
  return out;
}

/** Asserts the extents contract: ordered, contiguous from offset, within the range, non-empty, merged. */
export function checkExtentShape(ext: Extent[], offset: number, length: number): void {
  assert.ok(ext.length > 0, 'at least one extent');
  let pos = offset;
  for (let i = 0; i < ext.length; i++) {
    const e = ext[i]!;
    assert.equal(e.offset, pos, `extent ${i} starts where the previous ended`);
    assert.ok(e.length > 0, `extent ${i} is not empty`);
    if (i > 0) assert.notEqual(e.flags, ext[i - 1]!.flags, `extents ${i - 1} and ${i} should be merged`);
    pos += e.length;
  }
  assert.ok(pos <= offset + length, 'extents stay within the requested range');
}

/** Cuts data into views at random points, with some empty chunks, as a socket delivers a payload. */
export function splitChunks(data: Uint8Array, r: () => number, maxChunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length;) {
    const k = r() < 0.1 ? 0 : Math.min(data.length - at, 1 + Math.floor(r() * maxChunk));
    out.push(data.subarray(at, at + k));
    at += k;
  }
  return out;
}

async function open(t: TestContext, make: DiskFactory, size: number): Promise<Disk> {
  const disk = await make(size, tempDir(t));
  t.after(() => disk.close());
  return disk;
}

export function diskConformance(name: string, make: DiskFactory): void {
  describe(`${name}: Disk conformance`, () => {
    it('reports its size and sane capabilities', async (t) => {
      const disk = await open(t, make, 1 << 20);
      assert.equal(disk.size, 1 << 20);
      assert.equal(disk.capabilities.readOnly, false);
      assert.ok(disk.blockSize.minimum >= 1 && disk.blockSize.minimum <= disk.blockSize.preferred);
      assert.ok(disk.blockSize.preferred <= disk.blockSize.maximum);
    });

    it('starts zeroed and round-trips writes at unaligned offsets', async (t) => {
      const size = (1 << 20) + 12345;
      const disk = await open(t, make, size);
      const all = new Uint8Array(size);
      await disk.read(0, all);
      assert.ok(all.every((b) => b === 0));

      const data = pattern(70001, 1);
      await disk.write(4097, data);
      await disk.write(size - 3, Uint8Array.of(7, 8, 9)); // last bytes of the disk
      const back = new Uint8Array(data.length + 2);
      await disk.read(4096, back);
      assert.equal(back[0], 0);
      assert.deepEqual(back.subarray(1, data.length + 1), data);
      assert.equal(back[data.length + 1], 0);
      const tail = new Uint8Array(3);
      await disk.read(size - 3, tail);
      assert.deepEqual(tail, Uint8Array.of(7, 8, 9));
    });

    it('reads into a subarray without touching the bytes around it', async (t) => {
      const disk = await open(t, make, 65536);
      await disk.write(100, pattern(50, 2));
      const big = new Uint8Array(70).fill(0xee);
      await disk.read(100, big.subarray(10, 60));
      assert.deepEqual(big.subarray(10, 60), pattern(50, 2));
      assert.ok(big.subarray(0, 10).every((b) => b === 0xee) && big.subarray(60).every((b) => b === 0xee));
    });

    it('accepts zero-length requests anywhere up to the end', async (t) => {
      const disk = await open(t, make, 8192);
      await disk.read(8192, new Uint8Array(0));
      await disk.write(8192, new Uint8Array(0));
      await disk.trim(8192, 0);
      await disk.writeZeroes(0, 0);
      await disk.cache(8192, 0);
    });

    it('FUA writes and flush succeed and the data reads back', async (t) => {
      const disk = await open(t, make, 65536);
      await disk.write(1000, pattern(3000, 3), { fua: true });
      await disk.writeZeroes(1500, 100, { fua: true });
      await disk.flush();
      const back = new Uint8Array(3000);
      await disk.read(1000, back);
      const want = pattern(3000, 3);
      want.fill(0, 500, 600);
      assert.deepEqual(back, want);
    });

    it('trim and writeZeroes (with and without noHole) make ranges read zero', async (t) => {
      const size = 1 << 20;
      const disk = await open(t, make, size);
      await disk.write(0, pattern(size, 4));
      await disk.trim(1000, 200000);
      await disk.writeZeroes(300001, 131072);
      await disk.writeZeroes(600003, 99999, { noHole: true });
      const want = pattern(size, 4);
      want.fill(0, 1000, 201000);
      want.fill(0, 300001, 300001 + 131072);
      want.fill(0, 600003, 600003 + 99999);
      const back = new Uint8Array(size);
      await disk.read(0, back);
      assert.deepEqual(back, want);
    });

    it('matches a byte-array model under a random mix of operations', async (t) => {
      const size = 3 * 65536 + 777;
      const disk = await open(t, make, size);
      const model = new Uint8Array(size);
      const r = rng(42);
      const range = (max: number) => {
        const off = Math.floor(r() * size);
        return [off, Math.min(size - off, 1 + Math.floor(r() * max))] as const;
      };
      for (let i = 0; i < 300; i++) {
        const op = r();
        if (op < 0.45) {
          const [off, len] = range(70000);
          const data = pattern(len, i);
          if (r() < 0.5) await disk.write(off, data, { fua: r() < 0.1 });
          else await writeChunks(disk, off, splitChunks(data, r, 9000), { fua: r() < 0.1 });
          model.set(data, off);
        } else if (op < 0.6) {
          const [off, len] = range(140000);
          await disk.trim(off, len);
          model.fill(0, off, off + len);
        } else if (op < 0.75) {
          const [off, len] = range(140000);
          await disk.writeZeroes(off, len, { noHole: r() < 0.5 });
          model.fill(0, off, off + len);
        } else if (op < 0.9) {
          const [off, len] = range(100000);
          const back = new Uint8Array(len);
          await disk.read(off, back);
          assert.deepEqual(back, model.subarray(off, off + len), `read ${off}+${len} after op ${i}`);
        } else {
          const [off, len] = range(size);
          const ext = await disk.extents(off, len);
          checkExtentShape(ext, off, len);
          for (const e of ext) {
            if (e.flags & ExtentFlags.ZERO) {
              assert.ok(model.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `extent ${e.offset}+${e.length} claims zero`);
            }
          }
        }
      }
      const all = new Uint8Array(size);
      await disk.read(0, all);
      assert.deepEqual(all, model);
    });

    it('writev writes its chunks in order as one request, however they are cut', async (t) => {
      const size = 1 << 20;
      const disk = await open(t, make, size);
      assert.equal(typeof disk.writev, 'function', 'the disk takes chunks without joining them');
      const model = new Uint8Array(size);
      const r = rng(7);
      // Pieces of every shape: empty, one byte, across 4 KiB and 64 KiB pages; then more than IOV_MAX (1024) pieces.
      const cases: Array<[number, Uint8Array[]]> = [
        [4095, [new Uint8Array(0), Uint8Array.of(1), pattern(8193, 1), new Uint8Array(0), pattern(3, 2)]],
        [65536 - 7, splitChunks(pattern(200_000, 3), r, 70_000)],
        [300_001, splitChunks(pattern(5000, 4), () => 0.5, 2)],
        [size - 3, [Uint8Array.of(7), Uint8Array.of(8, 9)]],
        [12, []],
      ];
      for (const [off, chunks] of cases) {
        await disk.writev!(off, chunks, { fua: off === 12 });
        for (let at = off, i = 0; i < chunks.length; at += chunks[i]!.length, i++) model.set(chunks[i]!, at);
      }
      assert.ok(cases[2]![1].length > 1024, 'the IOV_MAX case has enough pieces');
      const all = new Uint8Array(size);
      await disk.read(0, all);
      assert.deepEqual(all, model);
      // A writev past the end is refused whole, like write.
      await assert.rejects(disk.writev!(size - 2, [Uint8Array.of(1), Uint8Array.of(2, 3)]), NoSpaceError);
      await disk.read(size - 3, all.subarray(0, 3));
      assert.deepEqual(all.subarray(0, 3), Uint8Array.of(7, 8, 9));
      await disk.close();
      await assert.rejects(disk.writev!(0, [Uint8Array.of(1), Uint8Array.of(2)]), ShutdownError);
    });

    it('extents of a fresh disk cover the request and read as zero where flagged', async (t) => {
      const disk = await open(t, make, 1 << 20);
      checkExtentShape(await disk.extents(0, 1 << 20), 0, 1 << 20);
      checkExtentShape(await disk.extents(12345, 1), 12345, 1);
      assert.deepEqual(await disk.extents(5, 0), []);
    });

    it('refuses out-of-range requests: NoSpaceError when modifying, InvalidArgumentError otherwise', async (t) => {
      const size = 65536;
      const disk = await open(t, make, size);
      await assert.rejects(disk.write(size - 1, new Uint8Array(2)), NoSpaceError);
      await assert.rejects(disk.write(size, new Uint8Array(1)), NoSpaceError);
      await assert.rejects(disk.trim(size - 10, 11), NoSpaceError);
      await assert.rejects(disk.writeZeroes(0, size + 1), NoSpaceError);
      await assert.rejects(disk.read(size - 1, new Uint8Array(2)), InvalidArgumentError);
      await assert.rejects(disk.extents(size, 1), InvalidArgumentError);
      await assert.rejects(disk.cache(1, size), InvalidArgumentError);
      await assert.rejects(disk.read(-1, new Uint8Array(1)), InvalidArgumentError);
      await assert.rejects(disk.write(0.5, new Uint8Array(1)), InvalidArgumentError);
      await assert.rejects(disk.trim(0, -1), InvalidArgumentError);
      // Nothing was written by the refused requests.
      const all = new Uint8Array(size);
      await disk.read(0, all);
      assert.ok(all.every((b) => b === 0));
    });

    it('close is idempotent and later requests fail with ShutdownError', async (t) => {
      const disk = await make(65536, tempDir(t));
      await disk.write(0, Uint8Array.of(1));
      await Promise.all([disk.close(), disk.close()]);
      await disk.close();
      await assert.rejects(disk.read(0, new Uint8Array(1)), ShutdownError);
      await assert.rejects(disk.write(0, new Uint8Array(1)), ShutdownError);
      await assert.rejects(disk.flush(), ShutdownError);
      await assert.rejects(disk.trim(0, 1), ShutdownError);
      await assert.rejects(disk.writeZeroes(0, 1), ShutdownError);
      await assert.rejects(disk.extents(0, 1), ShutdownError);
    });
  });
}
