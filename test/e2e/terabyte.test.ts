// A 2 TiB sparse image migrates end to end: the real agents as processes over the loopback, a
// workload writing a little through the source's NBD export during pre-copy (new data far out in
// a hole, an overwrite, a trim), then the cut-over. Before bounded messages the cut-over could
// not even be sent (the missing bitmap of 2^25 blocks was past the frame limit), and the start-up
// and the final hashing read every hole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk } from '../../src/block/file.ts';
import { ExtentFlags, type Disk } from '../../src/block/disk.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { REAL_CONTENT_MODEL } from '../../src/content/content-id.ts';
import { imageRoot } from '../../src/migrate/image-root.ts';
import { Prng } from '../../src/workload/prng.ts';
import { migrateWithAgents } from '../../testing/terabyte/agents.ts';
import { tempDir } from '../helpers/tmp.ts';

const TIB = 2 ** 40;
const MIB = 1 << 20;
const BS = 65536;

/** Data (not zero) extents of a disk, merged into [start, end) ranges. */
async function dataRanges(disk: Disk): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  for (let pos = 0; pos < disk.size; ) {
    const ext = await disk.extents(pos, disk.size - pos, 4096);
    if (!ext.length) break;
    for (const e of ext) {
      if ((e.flags & ExtentFlags.ZERO) === 0) {
        const last = out.at(-1);
        if (last && last[1] === e.offset) last[1] = e.offset + e.length;
        else out.push([e.offset, e.offset + e.length]);
      }
      pos = e.offset + e.length;
    }
  }
  return out;
}

/** Both images hold the same bytes on every range either has allocated (elsewhere both are holes). */
async function assertSameData(a: Disk, b: Disk): Promise<number> {
  const ranges = [...(await dataRanges(a)), ...(await dataRanges(b))].sort((x, y) => x[0] - y[0]);
  const x = Buffer.alloc(MIB);
  const y = Buffer.alloc(MIB);
  let compared = 0;
  let done = 0;
  for (const [start, end] of ranges) {
    for (let at = Math.max(start, done); at < end; at += MIB) {
      const len = Math.min(MIB, end - at);
      await a.read(at, x.subarray(0, len));
      await b.read(at, y.subarray(0, len));
      assert.ok(x.subarray(0, len).equals(y.subarray(0, len)), `the images differ in [${at}, ${at + len})`);
      compared += len;
    }
    done = Math.max(done, end);
  }
  return compared;
}

const SIZE = 2 * TIB;

/** A 2 TiB sparse image with 1 MiB of random data in a few places, first and last MiB included. */
async function makeImage(path: string, rng: Prng): Promise<void> {
  const img = await FileDisk.open(path, { create: true, size: SIZE });
  const buf = Buffer.alloc(MIB);
  for (const at of [0, 3 * MIB, 7 * 2 ** 30, 400 * 2 ** 30, TIB + 12345 * BS, SIZE - MIB]) {
    rng.fill(buf);
    await img.write(at, buf);
  }
  await img.close();
}

/** The target holds exactly the source's bytes, its root is the one the source verified, and its holes stayed holes. */
async function assertMigrated(src: string, dst: string, merkleRoot: unknown): Promise<void> {
  const a = await FileDisk.open(src, { readOnly: true });
  const b = await FileDisk.open(dst, { readOnly: true });
  try {
    const compared = await assertSameData(a, b);
    assert.ok(compared >= 5 * MIB, `compared ${compared} bytes`);
    // The target's own root over its image, computed here, is the root the source verified.
    const root = await imageRoot({ image: b, blockSize: BS, content: REAL_CONTENT_MODEL });
    assert.equal(root.toString('hex'), merkleRoot);
  } finally {
    await a.close();
    await b.close();
  }
  // The target allocated about what the source holds, not the image size.
  assert.ok(statSync(dst).blocks * 512 < 64 * MIB, `target allocated ${statSync(dst).blocks * 512} bytes`);
}

test('a 2 TiB sparse image with a workload writing a little migrates verified: byte-exact on the allocated ranges, same Merkle root', { timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  const rng = new Prng(20);
  await makeImage(src, rng);

  const run = await migrateWithAgents({
    dir, source: src, target: dst, timeoutMs: 170_000,
    duringPrecopy: async (nbd) => {
      // The VM writes a little while the image pre-copies: new data in a hole far out, part of a
      // block rewritten, a trim that turns data back into a hole.
      const vm = await NbdClient.connect(nbd);
      const data = Buffer.alloc(256 * 1024);
      rng.fill(data);
      await vm.write(1.5 * TIB, data);
      await vm.write(400 * 2 ** 30 + 4096, data.subarray(0, 8192));
      await vm.trim(3 * MIB, MIB);
      await vm.flush();
      await vm.close();
    },
  });
  const r = run.report;
  t.diagnostic(`2 TiB: wall ${(run.wallMs / 1000).toFixed(1)} s, time_total_s ${String(r.time_total_s)}, peak RSS source ${run.peakRssMiB.source.toFixed(0)} MiB, target ${run.peakRssMiB.target.toFixed(0)} MiB`);
  assert.equal(r.verified, true);
  assert.equal(r.image_bytes, SIZE);
  await assertMigrated(src, dst, r.merkle_root);
});

test('a source killed -9 in the middle of a 2 TiB cut-over restarts and completes: the VM\'s disk is not held for good', { timeout: 180_000 }, async (t) => {
  // The failure: the cut-over of a terabyte image failed, the source exited with the VM's
  // I/O held, and the resumed cut-over failed the same way. Here the source dies as its cut-over
  // begins (the VM's I/O held, the hand-off perhaps on its way); restarted with the same arguments
  // it learns from the target whether it took over, and goes on from there to a verified end.
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  const rng = new Prng(21);
  await makeImage(src, rng);
  const run = await migrateWithAgents({
    dir, source: src, target: dst, timeoutMs: 170_000, crashSourceInCutover: true,
    duringPrecopy: async (nbd) => {
      const vm = await NbdClient.connect(nbd);
      const data = Buffer.alloc(128 * 1024);
      rng.fill(data);
      await vm.write(TIB + 7 * MIB, data);
      await vm.flush();
      await vm.close();
    },
  });
  const r = run.report as { verified?: boolean; merkle_root?: string; resumes?: { sessions?: number } };
  t.diagnostic(`2 TiB, source killed in phase ${run.killedInPhase}: wall ${(run.wallMs / 1000).toFixed(1)} s, resumes ${JSON.stringify(r.resumes)}`);
  assert.equal(r.verified, true);
  assert.ok((r.resumes?.sessions ?? 0) >= 2, 'the restarted source resumed the session');
  await assertMigrated(src, dst, r.merkle_root);
});
