// Dirty-block dedup end to end in one process: what the target can build
// locally (its old copy, a base image in the replica index, content received
// earlier) must not cross the link, and the result must stay byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate } from '../helpers/migration-rig.ts';
import { tempDir as tmpDir } from '../helpers/tmp.ts';
import { Prng } from '../../src/workload/prng.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';

const BS = 65536;
const SIZE = 16 * 1024 * 1024;
const BLOCKS = SIZE / BS;

/** Random (incompressible) content, no zero blocks. */
function randomImage(seed: number): Buffer {
  const b = Buffer.allocUnsafe(SIZE);
  new Prng(seed).fill(b);
  return b;
}

/** A copy of `base` with `share` of its blocks replaced; returns the copy and the changed block numbers. */
function derive(base: Buffer, share: number, seed: number): { image: Buffer; changed: Set<number> } {
  const image = Buffer.from(base);
  const rng = new Prng(seed);
  const changed = new Set<number>();
  while (changed.size < Math.round(BLOCKS * share)) changed.add(rng.int(BLOCKS));
  for (const b of changed) rng.fill(image.subarray(b * BS, (b + 1) * BS));
  return { image, changed };
}

async function targetBytes(rig: { tgtImage: { read(o: number, b: Buffer): Promise<void> } }): Promise<Buffer> {
  const out = Buffer.alloc(SIZE);
  await rig.tgtImage.read(0, out);
  return out;
}

test('a target whose index holds a base image 90 % equal to the source receives about 10 % of the data', async (t) => {
  const dir = tmpDir(t);
  const base = randomImage(1);
  const basePath = join(dir, 'base.img');
  writeFileSync(basePath, base);
  const index = ReplicaIndex.open(join(dir, 'index'));
  t.after(() => index.close());
  const added = await indexImage(index, basePath, BS);
  assert.equal(added.scannedBlocks, BLOCKS);
  const { image, changed } = derive(base, 0.1, 2);
  const { report, rig } = await migrate({ algorithm: 'flimcd', size: SIZE, sourceInitial: image, index, vm: false, seed: 3 });
  assert.equal(report.verified, true);
  assert.ok((await targetBytes(rig)).equals(image), 'target byte-exact');
  assert.equal(report.blocks.sent_data, changed.size, 'only the changed blocks travel as data');
  assert.equal(report.blocks.from_replica, BLOCKS - changed.size);
  // Data on the wire is about 10 % of the image (random content does not compress).
  const share = report.wire_bytes_breakdown.data / SIZE;
  assert.ok(share > 0.09 && share < 0.115, `data share ${share}`);
  assert.ok(report.wire_bytes < SIZE * 0.12, `all wire bytes ${report.wire_bytes}`);
  // The same migration without dedup sends everything.
  const plain = await migrate({ algorithm: 'flimcd', features: { dedup: false }, size: SIZE, sourceInitial: image, index, vm: false, seed: 3 });
  assert.equal(plain.report.blocks.sent_data, BLOCKS);
  assert.equal(plain.report.verified, true);
});

test('migrate-back onto the older copy sends only the blocks that changed', async () => {
  const old = randomImage(5);
  const { image, changed } = derive(old, 0.05, 6);
  const { report, rig } = await migrate({ algorithm: 'flimcd', size: SIZE, sourceInitial: image, targetInitial: old, vm: false, seed: 4 });
  assert.equal(report.verified, true);
  assert.ok((await targetBytes(rig)).equals(image));
  assert.equal(report.blocks.sent_data, changed.size);
  assert.equal(report.blocks.from_replica, BLOCKS - changed.size);
  const st = report.dedup.target as { local: { same: number } };
  assert.equal(st.local.same, BLOCKS - changed.size, 'unchanged blocks were verified in place, not copied');
});

test('a changed replica file is detected and its blocks come from the source', async (t) => {
  const dir = tmpDir(t);
  const base = randomImage(7);
  const basePath = join(dir, 'base.img');
  writeFileSync(basePath, base);
  const index = ReplicaIndex.open(join(dir, 'index'));
  t.after(() => index.close());
  await indexImage(index, basePath, BS);
  // The base file changes after it was indexed: 20 blocks are corrupted.
  const corrupted = Buffer.from(base);
  for (let b = 0; b < 20; b++) {
    const i = b * 7 * BS + 123;
    corrupted[i] = corrupted[i]! ^ 0xff;
  }
  writeFileSync(basePath, corrupted);
  const { report, rig } = await migrate({ algorithm: 'flimcd', size: SIZE, sourceInitial: base, index, vm: false, seed: 8 });
  assert.equal(report.verified, true);
  assert.ok((await targetBytes(rig)).equals(base), 'no corrupt replica block reached the target');
  assert.equal(report.blocks.sent_data, 20, 'exactly the corrupted blocks came over the link');
  const st = report.dedup.target as { local: { staleEntries: number } };
  assert.equal(st.local.staleEntries, 20);
  // The stale entries are gone from the index.
  let stale = 0;
  for (let b = 0; b < 20; b++) {
    const { contentId } = await import('../../src/content/content-id.ts');
    if (index.lookup(BS, contentId(base.subarray(b * 7 * BS, (b * 7 + 1) * BS)))) stale++;
  }
  assert.equal(stale, 0);
});

test('duplicate writes during pre-copy travel as references, and the result stays exact', async () => {
  const { report, vm } = await migrate({ algorithm: 'flimcd', size: SIZE, bandwidthBps: 100e6, delayMs: 3, duplicateWrites: true, seed: 9 });
  assert.equal(vm!.readMismatches, 0);
  assert.ok(vm!.result.dupWrites > 0);
  assert.equal(report.verified, true);
  assert.equal(vm!.finalMismatches, 0, 'the target image holds what the VM wrote over the original');
  assert.ok(report.blocks.sent_reference > 0, `references ${report.blocks.sent_reference}`);
  assert.ok(report.wire_bytes_breakdown.reference > 0);
  // The fill pattern of the rig repeats nothing, so every reference is a VM-made duplicate.
  assert.ok(report.blocks.sent_reference <= vm!.result.dupWrites + report.blocks.resent_dirty);
});

test('compression: text-like blocks travel compressed, random ones raw, and the target decodes both', async () => {
  const img = Buffer.alloc(SIZE);
  const rng = new Prng(11);
  const words = Buffer.from('the quick brown fox jumps over the lazy dog block device kernel ');
  for (let b = 0; b < BLOCKS; b++) {
    const blk = img.subarray(b * BS, (b + 1) * BS);
    if (b % 2) rng.fill(blk);
    else {
      for (let o = 0; o < BS; o += words.length) words.copy(blk, o);
      blk.writeUInt32BE(b, 0); // unique
    }
  }
  const { report, rig } = await migrate({ algorithm: 'flimcd', size: SIZE, sourceInitial: img, vm: false, seed: 12 });
  assert.equal(report.verified, true);
  assert.ok((await targetBytes(rig)).equals(img));
  assert.equal(report.compression.compressed_blocks, BLOCKS / 2);
  assert.ok(report.compression.wire_bytes < report.compression.raw_bytes * 0.55, JSON.stringify(report.compression));
  const off = await migrate({ algorithm: 'flimcd', features: { compress: false }, size: SIZE, sourceInitial: img, vm: false, seed: 12 });
  assert.equal(off.report.compression.compressed_blocks, 0);
  assert.ok(off.report.wire_bytes_breakdown.data > report.wire_bytes_breakdown.data * 1.8);
});
