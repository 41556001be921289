// The target holds block messages that follow CUTOVER until it serves the VM,
// except the answer to a fetch the cut-over itself waits for: a reference the
// target could not resolve in pre-copy is fetched, and the source may answer it
// only after it sent CUTOVER. Held back, that answer would wait for a cut-over
// that waits for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { Channel, Priority } from '../../src/wire/channel.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { realClock } from '../../src/util/clock.ts';
import { REAL_RUNTIME } from '../../src/runtime.ts';
import { buildTargetStack } from '../../src/migrate/stack.ts';
import { LocalContent } from '../../src/migrate/local-content.ts';
import { contentId } from '../../src/content/content-id.ts';
import { Bitmap } from '../../src/util/bitmap.ts';
import { DataReason, MsgType, type Message } from '../../src/wire/messages.ts';
import { log } from '../../src/util/log.ts';
import { until } from '../helpers/until.ts';

const BS = 65536;
const BLOCKS = 8;

/** A target engine (dedup on, empty image) and a bare source-side channel the test speaks through. */
function setup() {
  const image = new MemoryDisk(BS * BLOCKS);
  const [a, b] = memoryLink(realClock, { bandwidthBps: 1e9, delayMs: 1 });
  const fromTarget: Message[] = [];
  const src = new Channel({ clock: realClock, onMessage: (m) => { fromTarget.push(m); } });
  const quiet = log.child({ test: 'cutover-deferral' });
  const local = new LocalContent({ image, imagePath: '/nonexistent/deferral.img', blockSize: BS, content: REAL_RUNTIME.content, preexisting: false, log: quiet });
  const { postcopy: disk, channel: tgt } = buildTargetStack({ runtime: REAL_RUNTIME, image, blockSize: BS, engine: { log: quiet, features: { dedup: true }, local } });
  src.attach(a);
  tgt.attach(b);
  return {
    image, disk, src,
    fetches: () => fromTarget.filter((m) => m.type === MsgType.FETCH).map((m) => (m.type === MsgType.FETCH ? m.blocks : [])),
    cutoverDone: () => fromTarget.some((m) => m.type === MsgType.CUTOVER_DONE),
    close: () => {
      src.close();
      tgt.close();
    },
  };
}

for (const answer of ['data', 'zero'] as const) {
  test(`a pre-copy reference fetched again is answered (${answer}) after CUTOVER: the cut-over completes with it applied`, async () => {
    const t = setup();
    try {
      const content = Buffer.alloc(BS, 7);
      await t.image.write(3 * BS, Buffer.alloc(BS, 1)); // old bytes: the answer must replace them
      // Content the target does not hold: it asks for the block.
      t.src.send({ type: MsgType.REF, block: 3, reason: DataReason.BULK, id: contentId(content) }, Priority.BULK);
      await until(() => t.fetches().length === 1, 3000, 'the unresolved reference is fetched');
      assert.deepEqual(t.fetches()[0], [3]);
      // The source froze the VM and sent CUTOVER before the fetch reached it; the answer follows.
      t.src.send({ type: MsgType.CUTOVER, cutover: { frozenAt: 0, missing: 0 } });
      // Or the block was zeroed at the source since it was referenced.
      if (answer === 'data') t.src.send({ type: MsgType.DATA, block: 3, reason: DataReason.DEMAND, data: content }, Priority.DEMAND);
      else t.src.send({ type: MsgType.ZERO, first: 3, count: 1, reason: DataReason.DEMAND }, Priority.DEMAND);
      await until(t.cutoverDone, 3000, 'the cut-over completes (it waited for the fetch whose answer came after CUTOVER)');
      const got = Buffer.alloc(BS);
      await t.image.read(3 * BS, got);
      assert.ok(got.equals(answer === 'data' ? content : Buffer.alloc(BS)), 'the fetched block is in the image');
      assert.equal(t.disk.missing.count, 0);
    } finally {
      t.close();
    }
  });
}

test('a fetch answered during the cut-over for a block listed missing is asked again once the VM is served', async () => {
  const t = setup();
  try {
    const old = Buffer.alloc(BS, 7);
    t.src.send({ type: MsgType.REF, block: 3, reason: DataReason.BULK, id: contentId(old) }, Priority.BULK);
    await until(() => t.fetches().length === 1, 3000, 'the unresolved reference is fetched');
    // The VM wrote block 3 after it was referenced: CUTOVER lists it missing; the source answers the
    // fetch with the frozen content and counts that as the block's delivery (it will not push it).
    const missing = new Bitmap(BLOCKS);
    missing.set(3);
    t.src.send({ type: MsgType.MISSING, last: false, span: { first: 0, count: BLOCKS, bits: missing.bits } });
    t.src.send({ type: MsgType.CUTOVER, cutover: { frozenAt: 0, missing: 1 } });
    const current = Buffer.alloc(BS, 9);
    t.src.send({ type: MsgType.DATA, block: 3, reason: DataReason.DEMAND, data: current }, Priority.DEMAND);
    await until(t.cutoverDone, 3000, 'the cut-over completes');
    await until(() => t.fetches().length === 2, 3000, 'block 3 is asked again');
    assert.deepEqual(t.fetches()[1], [3]);
    t.src.send({ type: MsgType.DATA, block: 3, reason: DataReason.DEMAND, data: current }, Priority.DEMAND);
    await until(() => t.disk.missing.count === 0, 3000, 'nothing is missing once the second answer is applied');
    const got = Buffer.alloc(BS);
    await t.image.read(3 * BS, got);
    assert.ok(got.equals(current));
  } finally {
    t.close();
  }
});
