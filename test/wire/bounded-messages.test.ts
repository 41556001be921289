// No message grows with the image: at 2^25 blocks (2 TiB at 64 KiB) every message that carries
// per-block state fits one frame, whatever the state looks like. Before this, CUTOVER carried the
// whole missing bitmap (2 MiB for 16 M blocks: past the frame limit) and WELCOME a base64 copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../../src/util/bitmap.ts';
import { bitmapSpans, MAX_SPAN_BLOCKS } from '../../src/wire/bitmap-span.ts';
import { MAX_FRAME_PAYLOAD } from '../../src/wire/frame.ts';
import { decodeMessage, encodeMessage, MAX_OFFER_BLOCKS, MAX_WRITTEN_BLOCKS, MsgType, OFFER_ID_BYTES, WIRE_VERSION, type Message } from '../../src/wire/messages.ts';
import { MemoryDisk } from '../../src/block/memory.ts';
import { TrackingDisk } from '../../src/block/filters/tracking.ts';
import { heatForHandoff } from '../../src/migrate/heat-handoff.ts';
import { ProtocolError } from '../../src/errors.ts';
import { Prng } from '../../src/workload/prng.ts';

const BLOCKS = 1 << 25;
const BS = 65536;

/** Encodes, checks it fits one frame, decodes; returns the payload size and the decoded message. */
function onTheWire(m: Message): { bytes: number; back: Message } {
  const payload = Buffer.concat(encodeMessage(m));
  assert.ok(payload.length <= MAX_FRAME_PAYLOAD, `${m.type}: ${payload.length} bytes > ${MAX_FRAME_PAYLOAD}`);
  return { bytes: payload.length, back: decodeMessage(m.type, payload) };
}

test('MISSING: a 2^25-block missing map in any shape travels in spans that each fit a frame, and comes back exact', () => {
  const rng = new Prng(7);
  const shapes: Array<[string, (b: Bitmap) => void]> = [
    ['everything missing', (b) => b.setAll()],
    ['every other block (worst for run lengths)', (b) => { for (let i = 0; i < BLOCKS; i += 2) b.set(i); }],
    ['random 1 %', (b) => { for (let i = 0; i < BLOCKS / 100; i++) b.set(rng.int(BLOCKS)); }],
  ];
  for (const [name, fill] of shapes) {
    const missing = new Bitmap(BLOCKS);
    fill(missing);
    const got = new Bitmap(BLOCKS);
    let spans = 0;
    for (const span of bitmapSpans(missing)) {
      const { back } = onTheWire({ type: MsgType.MISSING, last: false, span });
      assert.equal(back.type, MsgType.MISSING);
      if (back.type === MsgType.MISSING && back.span) got.setSpan(back.span.first, back.span.count, back.span.bits);
      spans++;
    }
    assert.ok(spans <= BLOCKS / MAX_SPAN_BLOCKS, `${name}: ${spans} spans`);
    assert.equal(got.count, missing.count, name);
    assert.ok(Buffer.from(got.bits).equals(Buffer.from(missing.bits)), name);
  }
});

test('CUTOVER: the heat hand-off of a 2 TiB image read all over stays bounded, and no bitmap rides in it', async () => {
  const disk = new TrackingDisk(new MemoryDisk(BLOCKS * BS), BS);
  const rng = new Prng(9);
  const buf = Buffer.alloc(4096);
  // Reads in far more areas and blocks than the hand-off keeps, some read together (co-access).
  for (let i = 0; i < 40_000; i++) {
    const at = rng.int(BLOCKS) * BS;
    await disk.read(at, buf);
    if (i % 3 === 0) await disk.read(Math.min(at + 3 * BS, (BLOCKS - 1) * BS), buf);
  }
  const heat = heatForHandoff(disk, performance.now());
  const { bytes, back } = onTheWire({ type: MsgType.CUTOVER, cutover: { frozenAt: 1, missing: BLOCKS, heat } });
  assert.ok(bytes < 512 * 1024, `CUTOVER of ${bytes} bytes`);
  assert.equal(back.type === MsgType.CUTOVER && back.cutover.missing, BLOCKS);
});

test('WRITTEN: the target\'s write ids go in batches of at most MAX_WRITTEN_BLOCKS, each within a frame; a larger one is refused', () => {
  const blocks = Uint32Array.from({ length: MAX_WRITTEN_BLOCKS }, (_, i) => BLOCKS - MAX_WRITTEN_BLOCKS + i);
  const ids = Buffer.alloc(MAX_WRITTEN_BLOCKS * 32, 0xab);
  const { back } = onTheWire({ type: MsgType.WRITTEN, blocks, ids });
  assert.ok(back.type === MsgType.WRITTEN && back.blocks.length === MAX_WRITTEN_BLOCKS && back.blocks[0] === BLOCKS - MAX_WRITTEN_BLOCKS);
  const over = Uint32Array.from({ length: MAX_WRITTEN_BLOCKS + 1 }, (_, i) => i);
  assert.throws(() => encodeMessage({ type: MsgType.WRITTEN, blocks: over, ids: Buffer.alloc(over.length * 32) }), ProtocolError);
  // Out of order is refused on arrival (the source merges them in block order).
  const payload = Buffer.concat(encodeMessage({ type: MsgType.WRITTEN, blocks: Uint32Array.from([5, 9]), ids: Buffer.alloc(64) }));
  payload.writeUInt32BE(10, 4);
  assert.throws(() => decodeMessage(MsgType.WRITTEN, payload), /ascending/);
});

test('VERIFY and WELCOME: a count of the target\'s writes and the resume mode, whatever the image size', () => {
  const stats = { phase: 'verify' as const, blocks: BLOCKS, blockSize: BS, receivedBlocks: {}, receivedBytes: 0, dedup: { refBlocks: 0, refFromReceived: 0, refFromLocal: 0, refFallback: 0, offered: 0, offerHave: 0, compressedBlocks: 0 }, readBlocks: 0, missBlocks: 0, claimedByWrite: 0, partialWriteFetches: 0, droppedData: 0, fetchRequests: 0 };
  const v = onTheWire({ type: MsgType.VERIFY, verify: { root: 'ab'.repeat(32), targetWrites: BLOCKS, hashMs: 1, stats } });
  assert.ok(v.bytes < 4096, `VERIFY of ${v.bytes} bytes`);
  const w = onTheWire({ type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: 's', features: [], processedSeq: 0, resume: 'postcopy' } });
  assert.ok(w.bytes < 256, `WELCOME of ${w.bytes} bytes`);
});

test('OFFER, HAVE, FETCH, ZERO: bounded by batch or request size, never by the image', () => {
  const n = MAX_OFFER_BLOCKS;
  const blocks = Uint32Array.from({ length: n }, (_, i) => BLOCKS - 1 - 2 * (n - i));
  onTheWire({ type: MsgType.OFFER, batch: 1, blocks, ids: Buffer.alloc(n * OFFER_ID_BYTES) });
  onTheWire({ type: MsgType.HAVE, batch: 1, count: n, have: new Uint8Array(n / 8) });
  // The largest NBD request (32 MiB) at the smallest block size (4 KiB) asks for 8192 blocks at once.
  onTheWire({ type: MsgType.FETCH, prefetch: false, blocks: Array.from({ length: 8192 }, (_, i) => BLOCKS - 8192 + i) });
  const z = onTheWire({ type: MsgType.ZERO, first: 0, count: BLOCKS, reason: 0 });
  assert.equal(z.bytes, 9);
});

test('CUTOVER: its heat comes back exact, and a heat whose pairs are malformed is refused as a protocol error', () => {
  const heat = { areaBlocks: 16, reads: [[0, 1.5], [7, 0]] as Array<[number, number]>, writes: [[3, 2]] as Array<[number, number]>, blocks: [[99, 4]] as Array<[number, number]>, co: [[1, [2, 3]]] as Array<[number, number[]]>, follows: [[5, 6]] as Array<[number, number]> };
  const { back } = onTheWire({ type: MsgType.CUTOVER, cutover: { frozenAt: 1, missing: 0, heat } });
  assert.deepEqual(back.type === MsgType.CUTOVER && back.cutover.heat, heat);
  const bad: Array<[string, unknown]> = [
    ['a negative block', { ...heat, reads: [[-1, 1]] }],
    ['a fractional block', { ...heat, blocks: [[1.5, 1]] }],
    ['a negative heat', { ...heat, writes: [[1, -2]] }],
    ['a pair of three', { ...heat, reads: [[1, 2, 3]] }],
    ['a fractional successor', { ...heat, follows: [[1, 2.5]] }],
    ['seventeen co-read partners', { ...heat, co: [[1, Array.from({ length: 17 }, (_, i) => i)]] }],
    ['a partner that is not an index', { ...heat, co: [[1, ['x']]] }],
    ['not an array', { ...heat, reads: { 0: [1, 1] } }],
  ];
  for (const [what, h] of bad) {
    const payload = Buffer.from(JSON.stringify({ frozenAt: 1, missing: 0, heat: h }));
    assert.throws(() => decodeMessage(MsgType.CUTOVER, payload), ProtocolError, what);
  }
});
