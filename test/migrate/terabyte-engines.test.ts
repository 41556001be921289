// The engines at 2^25 blocks (2 TiB at 64 KiB), in process over a memory link: a cut-over whose
// missing map is spread over the whole image, and a post-copy resume whose durable missing map and
// the VM's writes at the target reach the source in bounded messages (MISSING spans, WRITTEN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { REAL_RUNTIME } from '../../src/runtime.ts';
import { buildSourceDisks, buildSourceSession, buildTargetDisks, buildTargetSession } from '../../src/migrate/stack.ts';
import type { TargetEngine } from '../../src/migrate/target-engine.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { Bitmap } from '../../src/util/bitmap.ts';
import { MsgType } from '../../src/wire/messages.ts';
import { MAX_SPAN_BLOCKS } from '../../src/wire/bitmap-span.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';

const BS = 65536;
const N = 1 << 25;
/** Data blocks spread over the whole image (and its last block): many MISSING spans. */
const DATA_BLOCKS = Array.from({ length: 300 }, (_, i) => Math.floor((i * (N - 1)) / 299));

async function sourceImage(): Promise<MemoryDisk> {
  const img = new MemoryDisk(N * BS);
  const rng = new Prng(25);
  const buf = Buffer.alloc(BS);
  for (const b of DATA_BLOCKS) {
    rng.fill(buf);
    await img.write(b * BS, buf);
  }
  return img;
}

function pair(o: { src: MemoryDisk; tgt: MemoryDisk; resume: boolean; prepareTarget?: (disks: ReturnType<typeof buildTargetDisks>) => void }) {
  const runtime = REAL_RUNTIME;
  const quiet = log.child({ test: 'terabyte' });
  const srcDisks = buildSourceDisks({ runtime, image: o.src, blockSize: BS, gate: o.resume ? 'held' : 'open' });
  let target: TargetEngine | undefined;
  const tgtDisks = buildTargetDisks({ runtime, image: o.tgt, blockSize: BS, engine: () => target });
  o.prepareTarget?.(tgtDisks);
  const seen: number[] = [];
  const { engine: source, channel: srcCh } = buildSourceSession({
    runtime, disks: srcDisks,
    engine: { algorithm: 'postcopy', blockSize: BS, log: quiet, ...(o.resume ? { resume: { mode: 'postcopy' as const } } : {}) },
  });
  const t = buildTargetSession({ runtime, disks: tgtDisks, engine: { log: quiet, resumePostcopy: o.resume } });
  target = t.engine;
  // Count the messages the target receives, by type, to see what crossed.
  const handle = target.handle.bind(target);
  target.handle = (m) => { seen.push(m.type); return handle(m); };
  const sHandle = source.handle.bind(source);
  source.handle = (m) => { seen.push(m.type); return sHandle(m); };
  const [a, b] = memoryLink(runtime.clock, { bandwidthBps: 10e9, delayMs: 1 });
  srcCh.attach(a);
  t.channel.attach(b);
  return { source, target, tgtDisks, seen, close: () => { srcCh.close(); t.channel.close(); } };
}

test('2^25 blocks, post-copy: the cut-over hands over a missing map spread over the whole image in bounded spans, verified', { timeout: 120_000 }, async () => {
  const src = await sourceImage();
  const tgt = new MemoryDisk(N * BS);
  const p = pair({ src, tgt, resume: false });
  try {
    const report = await p.source.run();
    await p.target.result;
    assert.equal(report.verified, true);
    const spans = p.seen.filter((x) => x === MsgType.MISSING).length;
    assert.ok(spans >= 2 && spans <= N / MAX_SPAN_BLOCKS, `${spans} MISSING spans`);
    const a = Buffer.alloc(BS);
    const b = Buffer.alloc(BS);
    for (const blk of DATA_BLOCKS) {
      await src.read(blk * BS, a);
      await tgt.read(blk * BS, b);
      assert.ok(a.equals(b), `block ${blk}`);
    }
  } finally {
    p.close();
  }
});

test('2^25 blocks, post-copy resume: the target\'s durable missing map reaches the source in MISSING spans, its writes in WRITTEN, verified', { timeout: 120_000 }, async () => {
  const src = await sourceImage();
  const tgt = new MemoryDisk(N * BS);
  // The target had received every other data block before it restarted, and the VM wrote two blocks
  // there after the cut-over (one of them a block the source also holds): the source must take the
  // target's ids for those.
  const missing = new Bitmap(N);
  const written = new Bitmap(N);
  const buf = Buffer.alloc(BS);
  for (const [i, blk] of DATA_BLOCKS.entries()) {
    if (i % 2) missing.set(blk);
    else {
      await src.read(blk * BS, buf);
      await tgt.write(blk * BS, buf);
    }
  }
  for (const blk of [DATA_BLOCKS[2]!, N - 5]) {
    buf.fill(blk % 251);
    await tgt.write(blk * BS, buf);
    written.set(blk);
  }
  const p = pair({ src, tgt, resume: true, prepareTarget: (d) => d.postcopy.restore(missing, written) });
  try {
    const report = await p.source.run();
    await p.target.result;
    assert.equal(report.verified, true);
    assert.ok(p.seen.filter((x) => x === MsgType.MISSING).length >= 2, 'the missing map came in spans');
    assert.ok(p.seen.includes(MsgType.WRITTEN), 'the target\'s write ids came in WRITTEN');
    assert.equal(report.blocks.push + report.blocks.demand, DATA_BLOCKS.length / 2, 'exactly the missing blocks were pushed');
  } finally {
    p.close();
  }
});
