// End to end in one process (engines, channel, modelled 100 Mbit/s link with
// 20 ms RTT): a sequential reader at the target after an immediate cut-over.
// Block-order push is far behind the reader, so without prefetch nearly every
// block it reads is a miss; with prefetch the stream is detected after the
// first miss and read ahead. Both runs must verify and read correct data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRig, fillImage } from '../helpers/migration-rig.ts';

const MiB = 1 << 20;
const SIZE = 48 * MiB;

async function sequentialReaderRun(prefetch: boolean) {
  const rig = buildRig({ algorithm: 'postcopy', size: SIZE, bandwidthBps: 100e6, delayMs: 10, seed: 11, features: { prefetch } });
  await fillImage(rig.srcImage, 11);
  await rig.start();
  const expected = Buffer.alloc(8 * MiB);
  await rig.srcImage.read(40 * MiB, expected);
  const running = rig.source.run();
  // The target's gate holds reads until cut-over: the reader starts the moment the VM may run there.
  const got = Buffer.alloc(8 * MiB);
  for (let off = 0; off < got.length; off += 65536) {
    await rig.tgtGate.read(40 * MiB + off, got.subarray(off, off + 65536));
    await new Promise((r) => setTimeout(r, 10)); // an application that processes what it reads (~6 MB/s, half the link)
  }
  const report = await running;
  await rig.target.result;
  rig.srcCh.close();
  rig.tgtCh.close();
  if (process.env.DEBUG_PREFETCH) console.log(prefetch, rig.target.status());
  return { report, correct: got.equals(expected) };
}

test('a sequential reader after cut-over gets far fewer misses with prefetch than without; verified either way', async () => {
  const off = await sequentialReaderRun(false);
  const on = await sequentialReaderRun(true);
  assert.equal(off.correct, true, 'reader saw the source data (no prefetch)');
  assert.equal(on.correct, true, 'reader saw the source data (prefetch)');
  assert.equal(off.report.verified, true);
  assert.equal(on.report.verified, true);
  assert.equal(off.report.features.prefetch, false);
  assert.equal(on.report.features.prefetch, true);
  assert.equal(off.report.prefetch_requested, 0);
  // 5 of the 8 MiB are data (every third MiB of the rig's image is a hole, present from the start).
  assert.ok(off.report.misses >= 30, `without prefetch most data blocks miss: ${off.report.misses}`);
  assert.ok(on.report.misses * 4 <= off.report.misses, `prefetch: ${on.report.misses} misses vs ${off.report.misses} without`);
  assert.ok(on.report.prefetch_hits >= 30, `prefetch hits ${on.report.prefetch_hits}`);
  assert.ok(on.report.block_miss_rate < off.report.block_miss_rate);
  assert.ok(on.report.blocks.prefetch > 0, 'blocks travelled as prefetch');
});
