import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { Channel, INITIAL_WINDOW, Priority } from '../../src/wire/channel.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { DataReason, MsgType, type Message } from '../../src/wire/messages.ts';
import { FrameDecoder, encodeFrame, FRAME_HEADER_SIZE } from '../../src/wire/frame.ts';
import { carriesBlock, type BlockTag } from '../../src/wire/block-tag.ts';

function run(clock: VirtualClock, until: number) {
  clock.advanceTo(until);
}

function pair(clock: VirtualClock, model = { bandwidthBps: 100e6, delayMs: 20 }) {
  const got: Message[] = [];
  const [a, b] = memoryLink(clock, model);
  const src = new Channel({ clock, onMessage: () => {} });
  const dst = new Channel({ clock, onMessage: (m) => { got.push(m); } });
  src.attach(a);
  dst.attach(b);
  return { src, dst, got, a, b };
}

const data = (block: number, size = 65536) => ({ type: MsgType.DATA, block, reason: DataReason.BULK, data: Buffer.alloc(size, block & 0xff) }) as const;
const dataTag = (block: number, size = 65536): BlockTag => ({ kind: 'data', block, rawBytes: size, wireBytes: size, compressed: false });

test('messages arrive in order and intact; acks empty the retransmit list', () => {
  const clock = new VirtualClock();
  const { src, got } = pair(clock);
  for (let i = 0; i < 50; i++) src.send(data(i), Priority.BULK);
  run(clock, 5000);
  assert.deepEqual(got.map((m) => (m.type === MsgType.DATA ? m.block : -1)), [...Array(50).keys()]);
  for (const m of got) if (m.type === MsgType.DATA) assert.ok(m.data.every((x) => x === (m.block & 0xff)));
  assert.equal(src.stats.inFlight, 0);
  let idle = false;
  void src.waitAllAcked().then(() => (idle = true));
  run(clock, 5100);
  return Promise.resolve().then(() => assert.ok(idle));
});

test('a demand message overtakes queued bulk data, and bulk is limited by the window', () => {
  const clock = new VirtualClock();
  const { src, got } = pair(clock, { bandwidthBps: 10e6, delayMs: 25 });
  for (let i = 0; i < 200; i++) src.send(data(i), Priority.BULK); // 13 MB: 10 s at 10 Mbit
  run(clock, 100);
  src.send({ ...data(9999), reason: DataReason.DEMAND }, Priority.DEMAND);
  const sentAt = clock.now();
  let arrived = -1;
  for (let t = sentAt; t < sentAt + 20000 && arrived < 0; t += 5) {
    run(clock, t);
    if (got.some((m) => m.type === MsgType.DATA && m.block === 9999)) arrived = clock.now();
  }
  assert.ok(arrived > 0, 'demand data arrived');
  const latency = arrived - sentAt;
  // Behind it at most the initial window (512 KiB ≈ 0.42 s at 10 Mbit), never the 13 MB bulk queue.
  assert.ok(latency < 600, `demand latency ${latency} ms`);
  assert.ok(got.filter((m) => m.type === MsgType.DATA && m.block !== 9999).length < 80, 'bulk did not all go first');
});

test('promote: a queued bulk message moves to the demand lane and overtakes the rest of the bulk queue, once', () => {
  const clock = new VirtualClock();
  const { src, got } = pair(clock, { bandwidthBps: 10e6, delayMs: 25 });
  for (let i = 0; i < 200; i++) src.send(data(i), Priority.BULK, { tag: dataTag(i) });
  run(clock, 100);
  const isBlock = (b: number) => (tag: BlockTag) => carriesBlock(tag, b);
  const queuedBefore = src.queuedBytes(Priority.BULK);
  assert.equal(src.promote(Priority.DEMAND, isBlock(150)), 1);
  assert.equal(src.queuedBytes(Priority.BULK), queuedBefore - src.queuedBytes(Priority.DEMAND), 'moved, not copied');
  assert.equal(src.promote(Priority.DEMAND, isBlock(150)), 0, 'a message moves once');
  assert.equal(src.promote(Priority.DEMAND, isBlock(5000)), 0, 'nothing queued matches');
  const sentAt = clock.now();
  let arrived = -1;
  for (let t = sentAt; t < sentAt + 20000 && arrived < 0; t += 5) {
    run(clock, t);
    if (got.some((m) => m.type === MsgType.DATA && m.block === 150)) arrived = clock.now();
  }
  assert.ok(arrived - sentAt < 600, `promoted block after ${arrived - sentAt} ms, not behind the 13 MB queue`);
  run(clock, 60_000);
  const blocks = got.map((m) => (m.type === MsgType.DATA ? m.block : -1));
  assert.deepEqual([...blocks].sort((x, y) => x - y), [...Array(200).keys()], 'every block once, none lost or doubled');
  assert.ok(blocks.indexOf(150) < blocks.indexOf(100), 'block 150 overtook queued blocks');
});

test('purge takes back queued tagged messages only, returns their tags, and the ledger counts them as purged, not sent', () => {
  const clock = new VirtualClock();
  const { src, got } = pair(clock, { bandwidthBps: 10e6, delayMs: 25 });
  for (let i = 0; i < 40; i++) src.send(data(i), Priority.BULK, { tag: dataTag(i) });
  src.send({ type: MsgType.ZERO, first: 100, count: 5, reason: DataReason.BULK }, Priority.BULK, { tag: { kind: 'zero', first: 100, count: 5 } });
  src.send(data(200), Priority.BULK); // untagged: never matched
  assert.equal(src.ledger.blocks.dataBlocks, 40);
  assert.equal(src.ledger.blocks.zeroBlocks, 5);
  run(clock, 100);
  const taken = src.purge(Priority.BULK, () => true);
  assert.ok(taken.length > 0 && taken.length < 41, `some were on the wire already (${taken.length} taken back)`);
  assert.deepEqual(taken.at(-1), { kind: 'zero', first: 100, count: 5 });
  const takenData = taken.filter((t) => t.kind === 'data').length;
  assert.equal(src.ledger.blocks.dataBlocks, 40 - takenData);
  assert.equal(src.ledger.purged.dataBlocks, takenData);
  assert.equal(src.ledger.blocks.dataRawBytes, (40 - takenData) * 65536);
  assert.equal(src.ledger.blocks.zeroBlocks, 0);
  assert.equal(src.ledger.purged.zeroBlocks, 5);
  run(clock, 30_000);
  const blocks = got.map((m) => (m.type === MsgType.DATA ? m.block : -1));
  assert.equal(blocks.length, 40 - takenData + 1, 'what was taken back never arrives');
  assert.equal(blocks.at(-1), 200, 'the untagged message stayed queued');
  assert.equal(src.ledger.sentByType.DATA, (40 - takenData + 1) * (65536 + 5 + FRAME_HEADER_SIZE), 'the link bytes count what was sent');
});

test('the window adapts to the bandwidth-delay product, keeping demand latency low after warm-up', () => {
  const clock = new VirtualClock();
  const { src, got } = pair(clock, { bandwidthBps: 20e6, delayMs: 20 });
  let next = 0;
  const feed = () => { while (src.queuedBytes(Priority.BULK) < 1 << 20) src.send(data(next++), Priority.BULK); };
  for (let t = 0; t < 8000; t += 10) { feed(); run(clock, t); }
  const bdp = (20e6 / 8) * 0.04;
  assert.ok(src.stats.window <= 2.5 * bdp + 512 * 1024, `window ${src.stats.window} vs BDP ${bdp}`);
  assert.ok(src.stats.deliveryRateBps! > 15e6, `rate ${src.stats.deliveryRateBps}`);
  const sentAt = clock.now();
  src.send({ ...data(77777), reason: DataReason.DEMAND }, Priority.DEMAND);
  let arrived = -1;
  for (let t = sentAt; t < sentAt + 5000 && arrived < 0; t += 2) {
    feed();
    run(clock, t);
    if (got.some((m) => m.type === MsgType.DATA && m.block === 77777)) arrived = clock.now();
  }
  assert.ok(arrived - sentAt < 400, `demand latency after warm-up ${arrived - sentAt} ms`);
  // Throughput stays near the link rate.
  const bytes = got.filter((m) => m.type === MsgType.DATA).length * 65536;
  assert.ok((bytes * 8) / (clock.now() / 1000) > 14e6, 'link kept busy');
});

test('resume after a cut: nothing lost, nothing applied twice', () => {
  const clock = new VirtualClock();
  const [a, b] = memoryLink(clock, { bandwidthBps: 50e6, delayMs: 10 });
  const got: number[] = [];
  const src = new Channel({ clock, onMessage: () => {} });
  const dst = new Channel({ clock, onMessage: (m) => { if (m.type === MsgType.DATA) got.push(m.block); } });
  src.attach(a);
  dst.attach(b);
  for (let i = 0; i < 100; i++) src.send(data(i, 16384), Priority.BULK);
  run(clock, 60);
  a.cut();
  assert.equal(src.connected, false);
  const before = got.length;
  assert.ok(before > 0 && before < 100, `cut mid-transfer (${before})`);
  for (let i = 100; i < 120; i++) src.send(data(i, 16384), Priority.BULK);
  const [a2, b2] = memoryLink(clock, { bandwidthBps: 50e6, delayMs: 10 });
  src.attach(a2, dst.processedSeq);
  dst.attach(b2, src.processedSeq);
  run(clock, 5000);
  assert.deepEqual(got, [...Array(120).keys()]);
});

test('a corrupted frame is refused and the link drops', () => {
  const frame = Buffer.concat(encodeFrame(MsgType.PING, 0, 0, [Buffer.alloc(8)]));
  frame[frame.length - 1]! ^= 1;
  assert.throws(() => new FrameDecoder().push(frame), /checksum/);
  const clock = new VirtualClock();
  const [a, b] = memoryLink(clock);
  let lost: Error | undefined;
  const dst = new Channel({ clock, onMessage: () => {}, onDisconnect: (e) => (lost = e) });
  dst.attach(b);
  a.write([frame]);
  run(clock, 10);
  assert.match(String(lost), /checksum/);
});

test('frame decoder reassembles frames split at every byte boundary', () => {
  const frames = [0, 1, 2].map((i) => Buffer.concat(encodeFrame(MsgType.DATA, 0, i + 1, [Buffer.from([0, 0, 0, i, 0]), Buffer.alloc(1000 + i, i)])));
  const all = Buffer.concat(frames);
  for (const step of [1, 7, 16, 999, all.length]) {
    const d = new FrameDecoder();
    const out = [];
    for (let p = 0; p < all.length; p += step) out.push(...d.push(all.subarray(p, p + step)));
    assert.deepEqual(out.map((f) => f.seq), [1, 2, 3]);
    assert.equal(out[2]!.payload.length, 5 + 1002);
  }
});

test('samples from a sender with little to send do not shrink the window (application-limited, as BBR treats them)', () => {
  const clock = new VirtualClock();
  // 1 Gbit/s, 150 ms RTT: the BDP is ~19 MB. For 1 s only small messages (like OFFERs) are sent.
  const { src } = pair(clock, { bandwidthBps: 1e9, delayMs: 75 });
  for (let t = 0; t < 1000; t += 10) {
    src.send(data(t, 1024), Priority.BULK);
    run(clock, t);
  }
  run(clock, 1500);
  assert.ok(src.stats.deliveryRateBps! < 5e6, `the offered load is tiny (${src.stats.deliveryRateBps})`);
  assert.ok(src.stats.window >= INITIAL_WINDOW, `window ${src.stats.window} kept, not cut to the offered load`);
  // Once bulk data fills the window, the link's rate drives it (up towards 1.5 × BDP).
  let next = 0;
  for (let t = 1500; t < 6000; t += 5) {
    while (src.queuedBytes(Priority.BULK) < 8 << 20) src.send(data(next++), Priority.BULK);
    run(clock, t);
  }
  assert.ok(src.stats.window > 8 * 1024 * 1024, `window grew to ${src.stats.window}`);
});

test('acks bunched by a receiver that stalls do not inflate the rate estimate or the window', async () => {
  const clock = new VirtualClock();
  const link = { bandwidthBps: 20e6, delayMs: 20 };
  const [a, b] = memoryLink(clock, link);
  // A first window that covers the stalls: this is about reading the rate, not finding it.
  const src = new Channel({ clock, onMessage: () => {}, initialWindow: 4 * 1024 * 1024 });
  // The receiver applies messages in bursts: every 400 ms it finishes all it has (a disk or event-loop stall).
  const held: Array<() => void> = [];
  const dst = new Channel({ clock, onMessage: () => new Promise<void>((resolve) => { held.push(resolve); }) });
  src.attach(a);
  dst.attach(b);
  let next = 0;
  let maxRate = 0;
  for (let t = 0; t < 10_000; t += 10) {
    while (src.queuedBytes(Priority.BULK) < 1 << 20) src.send(data(next++), Priority.BULK);
    if (t % 400 === 0) {
      for (const f of held.splice(0)) f();
      await new Promise((r) => setImmediate(r)); // the receiver's handlers settle, then it acks
    }
    clock.advanceTo(t);
    if (t > 2000) maxRate = Math.max(maxRate, src.stats.deliveryRateBps ?? 0);
  }
  // Payload rate is a little under the link rate (framing); bunched acks must not read as a faster link.
  assert.ok(maxRate < 1.1 * link.bandwidthBps, `rate estimate ${(maxRate / 1e6).toFixed(1)} Mbit/s on a 20 Mbit/s link`);
  assert.ok(maxRate > 0.8 * link.bandwidthBps, `rate estimate ${(maxRate / 1e6).toFixed(1)} Mbit/s`);
  // The window covers the transmit-to-ack time (which includes the stalls) with little more.
  const bdpAck = (maxRate / 8) * (src.stats.minAckRttMs! / 1000);
  assert.ok(src.stats.window <= 1.3 * bdpAck + 1, `window ${src.stats.window} vs rate × ack rtt ${bdpAck}`);
});

test('start-up doubles the window per round trip until the rate stops growing, then keeps 1.25 × the bandwidth-delay product', () => {
  const clock = new VirtualClock();
  // 1 Gbit/s, 150 ms: the BDP is ~19 MB, 36 × the first window.
  const { src } = pair(clock, { bandwidthBps: 1e9, delayMs: 75 });
  let next = 0;
  let reachedAt: number | undefined;
  for (let t = 0; t < 8000; t += 5) {
    while (src.queuedBytes(Priority.BULK) < 16 << 20) src.send(data(next++), Priority.BULK);
    run(clock, t);
    if (reachedAt === undefined && (src.stats.deliveryRateBps ?? 0) > 0.8e9) reachedAt = t;
  }
  // Doubling needs ~6 round trips (0.9 s) plus the first; growing by 1.25 would need ~16 (2.4 s).
  assert.ok(reachedAt !== undefined && reachedAt < 1800, `80 % of the link rate after ${reachedAt} ms`);
  const bdpAck = (src.stats.deliveryRateBps! / 8) * (src.stats.minAckRttMs! / 1000);
  assert.ok(src.stats.window <= 1.3 * bdpAck + 1, `after start-up the window ${src.stats.window} is ~1.25 × ${Math.round(bdpAck)}`);
  assert.ok(src.stats.window >= 1.2 * bdpAck, `window ${src.stats.window} keeps the link busy`);
  // What reports call the measured rate: the median while the link was the limit, start-up included.
  const r = src.stats.linkRateBps!;
  assert.ok(r > 0.85e9 && r <= 1.01e9, `link rate ${(r / 1e6).toFixed(0)} Mbit/s on a 1 Gbit/s link`);
});

/** Payload bytes a channel delivered per second of link time between 3 s and 8 s, over the link's rate. */
async function utilisation(o: { bandwidthBps: number; delayMs: number; preferThroughput: boolean; stallEveryMs?: number; stallMs?: number }): Promise<number> {
  const clock = new VirtualClock();
  const [a, b] = memoryLink(clock, { bandwidthBps: o.bandwidthBps, delayMs: o.delayMs });
  const src = new Channel({ clock, onMessage: () => {} });
  src.preferThroughput(o.preferThroughput);
  const held: Array<() => void> = [];
  let stalled = false;
  let got = 0;
  let gotAt3s = 0;
  // The receiver stalls for stallMs every stallEveryMs (a flush, a GC pause): its acks wait, the link need not.
  const dst = new Channel({ clock, onMessage: () => { got++; return stalled ? new Promise<void>((r) => held.push(r)) : undefined; } });
  src.attach(a);
  dst.attach(b);
  let next = 0;
  for (let t = 0; t <= 8000; t++) {
    // The producer fills the bulk queue every millisecond.
    for (;;) {
      // Room now? (waitBulkRoom resolves at once when there is; its callback runs before this await's.)
      let room = false;
      void src.waitBulkRoom().then(() => (room = true));
      await Promise.resolve();
      if (!room) break;
      src.send(data(next++), Priority.BULK);
    }
    if (o.stallEveryMs) {
      const phase = t % o.stallEveryMs;
      if (phase === 0) stalled = true;
      if (phase === o.stallMs) {
        stalled = false;
        for (const f of held.splice(0)) f();
        await new Promise((r) => setImmediate(r));
      }
    }
    clock.advanceTo(t);
    if (t === 3000) gotAt3s = got;
  }
  return ((got - gotAt3s) * (65536 + 5 + FRAME_HEADER_SIZE) * 8) / 5 / o.bandwidthBps;
}

test('preferring throughput (pre-copy), a receiver that stalls 10 ms in every 100 leaves a 1 Gbit/s link busy; otherwise the window keeps 1.25 × the BDP', async () => {
  const link = { bandwidthBps: 1e9, delayMs: 5, stallEveryMs: 100, stallMs: 10 };
  const throughput = await utilisation({ ...link, preferThroughput: true });
  assert.ok(throughput >= 0.97, `utilisation ${throughput.toFixed(3)} preferring throughput`);
  // The latency-sensitive window (post-copy) idles the link during such stalls: the price of a short queue.
  const latency = await utilisation({ ...link, preferThroughput: false });
  assert.ok(latency < throughput, `latency-sensitive ${latency.toFixed(3)} vs ${throughput.toFixed(3)}`);
});

test('turning preferThroughput off shrinks the window to 1.25 × the bandwidth-delay product at once', () => {
  const clock = new VirtualClock();
  const { src } = pair(clock, { bandwidthBps: 100e6, delayMs: 20 });
  src.preferThroughput(true);
  let next = 0;
  for (let t = 0; t < 6000; t += 5) {
    while (src.queuedBytes(Priority.BULK) < 1 << 20) src.send(data(next++), Priority.BULK);
    run(clock, t);
  }
  const bdp = (src.stats.deliveryRateBps! / 8) * (src.stats.minAckRttMs! / 1000);
  assert.ok(src.stats.window >= 1.9 * bdp, `window ${src.stats.window} is ~2 × ${Math.round(bdp)} preferring throughput`);
  src.preferThroughput(false);
  assert.ok(src.stats.window <= 1.26 * bdp, `window ${src.stats.window} is ~1.25 × ${Math.round(bdp)} after`);
});
