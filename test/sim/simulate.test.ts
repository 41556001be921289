// The simulator itself: the real engines on a virtual clock, a modelled disk
// and link. Small images, so these run in a second or two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../../src/sim/simulate.ts';
import { syntheticImage } from '../../src/sim/image-model.ts';
import { SimDisk } from '../../src/sim/sim-disk.ts';
import { modelledRuntime, Kind, stamp } from '../../src/sim/content-model.ts';
import { REAL_RUNTIME } from '../../src/runtime.ts';
import { VirtualClock } from '../../src/util/clock.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile } from '../../src/workload/profiles.ts';

const MiB = 2 ** 20;

function requests(profile: 'moderate' | 'heavy' | 'mail', size: number, bw: number, seed = 1) {
  return new RequestGenerator(resolveProfile(profile, { linkBitsPerSecond: bw, imageBytes: size, blockSize: 65536 }).params, seed);
}

test('modelled disk: content identity round-trips through read and write; the models name it without hashing', async () => {
  const { content } = modelledRuntime(new VirtualClock());
  {
    const a = syntheticImage(8 * MiB, 65536, 3);
    const b = new SimDisk(8 * MiB, 65536);
    const buf = Buffer.allocUnsafe(65536);
    for (let blk = 0; blk < a.blocks; blk++) {
      await a.read(blk * 65536, buf);
      await b.write(blk * 65536, buf);
    }
    assert.deepEqual(b.ids, a.ids);
    assert.ok(a.dataBlocks > 0 && a.dataBlocks < a.blocks, 'the mix has holes and data');
    // A partial workload write changes the block's id; the same write on a copy gives the same id.
    const w = Buffer.alloc(8192);
    stamp(w, 0, Kind.WRITE, 42, 0);
    const before = a.ids[1]!;
    await a.write(65536 + 4096, w);
    await b.write(65536 + 4096, w);
    assert.notEqual(a.ids[1], before);
    assert.equal(a.ids[1], b.ids[1]);
    // A modelled read writes only the token: the filler beyond it is whatever the buffer held, made
    // different here on purpose (two fresh allocations may both be zero pages).
    buf.fill(0xaa);
    await a.read(65536, buf);
    const again = Buffer.alloc(65536, 0x55);
    await b.read(65536, again);
    assert.ok(content.id(buf).equals(content.id(again)));
    // The agents' runtime hashes the bytes: the token alone does not make two blocks equal.
    assert.ok(!REAL_RUNTIME.content.id(buf).equals(REAL_RUNTIME.content.id(again)));
    await a.writeZeroes(0, 65536);
    await a.read(0, buf);
    assert.equal(content.isZero(buf), true);
    assert.equal(REAL_RUNTIME.content.isZero(buf), false, 'a modelled zero block is not zero bytes');
  }
  // Bytes without a token are real ones to the model too.
  assert.equal(content.isZero(Buffer.alloc(4096)), true);
});

for (const algorithm of ['precopy', 'postcopy', 'hybrid', 'flimcd'] as const) {
  test(`${algorithm}: a simulated migration under a workload verifies and reports the measures`, async () => {
    const size = 64 * MiB;
    const r = await simulate({ image: syntheticImage(size, 65536, 1), algorithm, bandwidthBps: 50e6, rttMs: 30, requests: requests('moderate', size, 50e6), controlRequests: requests('moderate', size, 50e6), warmupMs: 3000 });
    const x = r.report;
    assert.equal(x.verified, true, 'Merkle roots agree');
    assert.ok(x.time_total_s > 0);
    // Lower bound from the link: the non-zero data, at most 4x compressed, must cross it.
    assert.ok(x.time_total_s * 50e6 / 8 > 0.1 * size, `time ${x.time_total_s} s too short for the data`);
    assert.ok(x.wire_bytes > 0.2 * size);
    if (algorithm === 'precopy') assert.equal(x.time_postcopy_s, 0);
    else assert.ok(x.blocks_read_postcopy > 0, 'the VM read at the target during post-copy');
    assert.ok(r.guest.reads > 0 && r.guest.writes > 0);
    assert.ok(r.guest.guest_slowdown !== null && r.guest.guest_slowdown >= 1);
  });
}

test('dedup: mail duplicates go as references, and flimcd moves fewer bytes than precopy', async () => {
  const size = 64 * MiB;
  const run = (algorithm: 'precopy' | 'flimcd') => simulate({ image: syntheticImage(size, 65536, 1), algorithm, bandwidthBps: 50e6, rttMs: 30, requests: requests('mail', size, 50e6), warmupMs: 3000 });
  const p = await run('precopy');
  const f = await run('flimcd');
  assert.ok(f.report.blocks.sent_reference > 0);
  assert.equal(p.report.blocks.sent_reference, 0);
  assert.ok(f.report.wire_bytes < p.report.wire_bytes, `${f.report.wire_bytes} vs ${p.report.wire_bytes}`);
});

test('deterministic: the same inputs give the same report', async () => {
  const size = 32 * MiB;
  const run = () => simulate({ image: syntheticImage(size, 65536, 2), algorithm: 'flimcd', bandwidthBps: 20e6, rttMs: 50, requests: requests('heavy', size, 20e6, 5), warmupMs: 2000 });
  const a = await run();
  const b = await run();
  assert.equal(a.report.time_total_s, b.report.time_total_s);
  assert.equal(a.report.wire_bytes, b.report.wire_bytes);
  assert.equal(a.report.merkle_root, b.report.merkle_root);
});

// The simulator's speed is measured by bench:paper (its report says how long the simulation took),
// not asserted here: a timed assertion fails on a loaded machine.
test('scale: a 2 GiB image at 100 Mbit/s simulates to a verified end', async () => {
  const size = 2048 * MiB;
  const r = await simulate({ image: syntheticImage(size, 65536, 1), algorithm: 'flimcd', bandwidthBps: 100e6, rttMs: 50, requests: requests('moderate', size, 100e6), warmupMs: 2000 });
  assert.equal(r.report.verified, true);
  const wireBytes = Number(r.report.wire_bytes);
  assert.ok(wireBytes > 0);
  assert.ok(r.report.time_total_s >= (wireBytes * 8) / 100e6, 'the modelled time covers the bytes the link carried');
});

test('runVirtual: every continuation a timer sets off runs before the next timer fires', async () => {
  const { runVirtual } = await import('../../src/sim/simulate.ts');
  const { VirtualClock } = await import('../../src/util/clock.ts');
  const clock = new VirtualClock();
  const seen: string[] = [];
  const deep = async (n: number): Promise<void> => {
    if (n > 0) return deep(n - 1);
    await Promise.resolve();
  };
  // Each timer starts a long await chain and logs when it ends; the next timer must see it ended.
  for (let i = 0; i < 2000; i++) {
    clock.setTimer(i, () => {
      seen.push(`fire ${i}`);
      void deep(50).then(() => process.nextTick(() => seen.push(`done ${i}`)));
    });
  }
  const finished = new Promise<void>((r) => clock.setTimer(5000, r));
  const { events } = await runVirtual(clock, finished, 10_000);
  assert.equal(events, 2001);
  for (let i = 0; i < 2000; i++) assert.deepEqual(seen.slice(2 * i, 2 * i + 2), [`fire ${i}`, `done ${i}`]);
});

test('modelled frames: the checksum covers the header, the first bytes and the length; outside a simulation every byte', async () => {
  const { encodeFrame, FrameDecoder } = await import('../../src/wire/frame.ts');
  const { CHECKED_PAYLOAD_BYTES } = await import('../../src/sim/content-model.ts');
  const block = Buffer.alloc(65536);
  stamp(block, 0, Kind.BLOCK, 77, 0);
  const { frameChecksum } = modelledRuntime(new VirtualClock());
  {
    const f = Buffer.concat(encodeFrame(9, 0, 1, [Buffer.from('meta'), block], frameChecksum));
    assert.equal(new FrameDecoder(frameChecksum).push(f).length, 1);
    const early = Buffer.from(f);
    early[16 + 4 + 10]! ^= 1; // inside the token
    assert.throws(() => new FrameDecoder(frameChecksum).push(early), /checksum/);
    const late = Buffer.from(f);
    late[16 + CHECKED_PAYLOAD_BYTES + 100]! ^= 1; // modelled filler: not read, not checked
    assert.equal(new FrameDecoder(frameChecksum).push(late).length, 1);
  }
  const real = Buffer.concat(encodeFrame(9, 0, 1, [Buffer.from('meta'), block], REAL_RUNTIME.frameChecksum));
  real[16 + CHECKED_PAYLOAD_BYTES + 100]! ^= 1;
  assert.throws(() => new FrameDecoder(REAL_RUNTIME.frameChecksum).push(real), /checksum/);
});

test('block buffers: own memory for agents; inside a simulation, private carried bytes over a shared filler', async () => {
  const { CHECKED_PAYLOAD_BYTES } = await import('../../src/sim/content-model.ts');
  const a = REAL_RUNTIME.allocBlock(65536);
  const b = REAL_RUNTIME.allocBlock(65536);
  assert.notEqual(a.buffer, b.buffer, 'outside a simulation every block has its own memory');
  const { allocBlock } = modelledRuntime(new VirtualClock());
  {
    const bufs = Array.from({ length: 64 }, (_, i) => {
      const x = allocBlock(65536);
      assert.equal(x.length, 65536);
      x.fill(i, 0, CHECKED_PAYLOAD_BYTES);
      return x;
    });
    bufs.forEach((x, i) => assert.ok(x.subarray(0, CHECKED_PAYLOAD_BYTES).every((v) => v === i), `buffer ${i} kept its carried bytes`));
    assert.ok(new Set(bufs.map((x) => x.buffer)).size < 4);
  }
  assert.notEqual(REAL_RUNTIME.allocBlock(65536).buffer, REAL_RUNTIME.allocBlock(65536).buffer);
});
