// The executor and the verification model: clean runs verify, corruption is
// caught (the check can fail), requests never overlap a write in flight, and a
// cut-over from a source NBD server to a target one (ESHUTDOWN, or the source
// hanging up) is followed with every read still verified.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { FilterDisk } from '../../src/block/filter.ts';
import { MemoryDisk } from '../../src/block/memory.ts';
import type { Disk } from '../../src/block/disk.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { ShutdownError, IoError } from '../../src/errors.ts';
import { Prng } from '../../src/workload/prng.ts';
import { ExpectedDisk, finalVerify } from '../../src/workload/expected.ts';
import { WorkloadExecutor, type ExecutorOptions } from '../../src/workload/executor.ts';
import { VirtualClock } from '../../src/util/clock.ts';
import { RequestGenerator, type WorkloadRequest } from '../../src/workload/generator.ts';
import { contentFor, PAGE_SIZE } from '../../src/workload/content.ts';
import { resolveProfile, type ProfileName } from '../../src/workload/profiles.ts';
import { startServer } from '../helpers/nbd-server.ts';
import { tempDir } from '../helpers/tmp.ts';

const MiB = 2 ** 20;

function generator(profile: ProfileName, image: number, seed: number, linkBits = 100e6): RequestGenerator {
  const r = resolveProfile(profile, { linkBitsPerSecond: linkBits, imageBytes: image });
  return new RequestGenerator(r.params, seed);
}

/** Delays every request by 0-3 ms and records any overlap of a request with an in-flight write. */
class SlowCheckingDisk extends FilterDisk {
  readonly violations: string[] = [];
  maxInFlight = 0;
  private readonly live = new Set<{ start: number; end: number; write: boolean }>();
  private readonly rng = new Prng(5);

  private async guard(start: number, end: number, write: boolean, op: () => Promise<void>): Promise<void> {
    for (const x of this.live) {
      if ((write || x.write) && x.start < end && start < x.end) this.violations.push(`${write ? 'write' : 'read'} ${start}-${end} overlaps ${x.write ? 'write' : 'read'} ${x.start}-${x.end}`);
    }
    const me = { start, end, write };
    this.live.add(me);
    this.maxInFlight = Math.max(this.maxInFlight, this.live.size);
    try {
      await new Promise((r) => setTimeout(r, this.rng.int(4)));
      await op();
    } finally {
      this.live.delete(me);
    }
  }

  override read(offset: number, into: Uint8Array): Promise<void> {
    return this.guard(offset, offset + into.length, false, () => this.inner.read(offset, into));
  }

  override write(offset: number, data: Uint8Array): Promise<void> {
    return this.guard(offset, offset + data.length, true, () => this.inner.write(offset, data));
  }
}

test('a run against a memory disk verifies cleanly, keeps the queue bound and never overlaps a write in flight', async () => {
  const mem = new MemoryDisk(64 * MiB);
  const disk = new SlowCheckingDisk(mem);
  const expected = await ExpectedDisk.create(disk.size, 21);
  const seconds: number[] = [];
  const exec = new WorkloadExecutor({
    disk, expected, requests: generator('heavy', disk.size, 21, 100e6), durationMs: 1500, queueDepth: 8,
    onSecond: (s) => seconds.push(s.second),
  });
  const res = await exec.run();
  assert.equal(res.error, undefined);
  assert.deepEqual(disk.violations, []);
  assert.ok(disk.maxInFlight <= 8);
  assert.ok(res.reads > 100 && res.writes > 50, `${res.reads} reads, ${res.writes} writes`);
  assert.equal(res.verify.mismatches, 0);
  assert.ok(res.verify.pagesChecked > 0, 'some reads hit written pages');
  assert.ok(res.latency.read.p99Ms >= res.latency.read.p50Ms && res.latency.read.p50Ms > 0);
  assert.ok(res.response.read.p50Ms >= res.latency.read.p50Ms * 0.98);
  assert.ok(res.dirtiedBytesPerSecond > 0);
  assert.deepEqual(seconds, [0]);
  assert.ok(res.perSecond.length >= 2);
  assert.equal(res.perSecond.reduce((a, s) => a + s.reads + s.writes, 0), res.ops);
  const fin = await finalVerify(disk, expected);
  assert.equal(fin.mismatches, 0);
  assert.equal(fin.pagesChecked, expected.pagesWritten);
  assert.equal(fin.scope, 'written');
});

test('a page changed behind the executor\'s back is detected, with what was found', async () => {
  const disk = new MemoryDisk(32 * MiB);
  const expected = await ExpectedDisk.create(disk.size, 3);
  const res = await new WorkloadExecutor({ disk, expected, requests: generator('moderate', disk.size, 3), durationMs: 500 }).run();
  assert.equal(res.verify.mismatches, 0);
  const written = [...expected.writtenRanges(PAGE_SIZE)].map((r) => r.offset);
  assert.ok(written.length >= 3);
  // 1: garbage; 2: zeroes; 3: another write's content (a misplaced or stale write).
  const [a, b, c] = [written[0]!, written[Math.floor(written.length / 2)]!, written[written.length - 1]!];
  await disk.write(a, new Uint8Array(PAGE_SIZE).fill(0xab));
  await disk.write(b, new Uint8Array(PAGE_SIZE));
  await disk.write(c, contentFor(3, 999_999, c, PAGE_SIZE));
  const fin = await finalVerify(disk, expected);
  assert.equal(fin.mismatches, 3);
  const found = new Map(expected.stats.firstMismatches.map((m) => [m.offset, m]));
  assert.equal(found.get(a)?.found.kind, 'other');
  assert.equal(found.get(a)?.expectedTag, expected.tagAt(a));
  assert.equal(found.get(a)?.during, 'final');
  assert.equal(found.get(b)?.found.kind, 'zero');
  assert.deepEqual(found.get(c)?.found, { kind: 'workload', tag: 999_999, phase: (c % MiB) / PAGE_SIZE, seed: 3, intact: true });
});

test('a corrupted page is caught by a workload read, and never-written pages are checked against a base', async () => {
  const size = 16 * MiB;
  const base = new MemoryDisk(size);
  const noise = new Uint8Array(4 * MiB);
  new Prng(1).fill(noise);
  await base.write(0, noise);
  const disk = new MemoryDisk(size);
  await disk.write(0, noise);
  await disk.write(8 * MiB, new Uint8Array(PAGE_SIZE).fill(1)); // differs from the base (zero there)
  const expected = await ExpectedDisk.create(size, 4, { base });
  // A scripted schedule: write a page, read it back, corrupt it between the two, read an unwritten page.
  const reqs: WorkloadRequest[] = [
    { atMs: 0, op: 'write', offset: 1 * MiB, length: 2 * PAGE_SIZE, tag: 77, dup: false, seq: false },
    { atMs: 50, op: 'read', offset: 1 * MiB, length: 2 * PAGE_SIZE, tag: 0, dup: false, seq: false },
    { atMs: 100, op: 'read', offset: 8 * MiB - PAGE_SIZE, length: 2 * PAGE_SIZE, tag: 0, dup: false, seq: false },
    { atMs: 110, op: 'read', offset: 64 * 1024, length: 16 * PAGE_SIZE, tag: 0, dup: false, seq: false },
  ];
  const exec = new WorkloadExecutor({ disk, expected, requests: { next: () => reqs.shift() }, durationMs: 1000 });
  const running = exec.run();
  await new Promise((r) => setTimeout(r, 25));
  await disk.write(1 * MiB + PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(9));
  const res = await running;
  assert.equal(res.verify.mismatches, 2);
  const [m1, m2] = res.verify.firstMismatches;
  assert.deepEqual([m1!.offset, m1!.expectedTag, m1!.during], [1 * MiB + PAGE_SIZE, 77, 'read']);
  assert.deepEqual([m2!.offset, m2!.expectedTag], [8 * MiB, 0]);
  assert.equal(res.verify.pagesSkipped, 0);
  assert.equal(res.verify.pagesChecked, 2 + 2 + 16);
  // With a base the final pass covers the whole disk.
  const fin = await finalVerify(disk, expected);
  assert.equal(fin.scope, 'whole-disk');
  assert.equal(fin.mismatches, 2);
  assert.equal(fin.pagesChecked, size / PAGE_SIZE);
});

test('pause() freezes the schedule, stop() ends the run early', async () => {
  const disk = new MemoryDisk(32 * MiB);
  const expected = await ExpectedDisk.create(disk.size, 8);
  const exec = new WorkloadExecutor({ disk, expected, requests: generator('moderate', disk.size, 8), durationMs: 600 });
  const running = exec.run();
  await new Promise((r) => setTimeout(r, 200));
  exec.pause();
  await new Promise((r) => setTimeout(r, 50));
  const opsBefore = expected.pagesWritten;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(expected.pagesWritten, opsBefore, 'no writes while paused');
  exec.resume();
  const res = await running;
  assert.ok(res.pausedMs >= 300, `paused ${res.pausedMs}`);
  assert.ok(res.elapsedMs >= 600 + 300, `elapsed ${res.elapsedMs}`);
  assert.equal(res.stopped, false);
  assert.equal(res.verify.mismatches, 0);

  const exec2 = new WorkloadExecutor({ disk, expected: await ExpectedDisk.create(disk.size, 9), requests: generator('moderate', disk.size, 9), durationMs: 60_000 });
  const r2 = exec2.run();
  await new Promise((r) => setTimeout(r, 150));
  exec2.stop();
  const res2 = await r2;
  assert.equal(res2.stopped, true);
  assert.ok(res2.elapsedMs < 2000 && res2.ops > 0);
});

test('a virtual clock drives the schedule: no real waiting', async () => {
  const clock = new VirtualClock();
  const disk = new MemoryDisk(64 * MiB);
  const expected = await ExpectedDisk.create(disk.size, 2);
  const wall = performance.now();
  const run = new WorkloadExecutor({ disk, expected, requests: generator('moderate', disk.size, 2), durationMs: 20_000, clock }).run();
  // Discrete events: once everything else has run (setImmediate), time jumps to the next timer.
  let finished = false;
  run.then(() => (finished = true), () => (finished = true));
  while (!finished) {
    await new Promise((r) => setImmediate(r));
    clock.step();
  }
  const res = await run;
  assert.ok(performance.now() - wall < 5000);
  assert.ok(res.elapsedMs >= 19_000 && res.elapsedMs <= 20_100, `${res.elapsedMs}`);
  assert.equal(res.perSecond.length, 20);
  assert.equal(res.verify.mismatches, 0);
});

test('a failure that is not a cut-over ends the run with the error and the numbers so far', async () => {
  class Failing extends FilterDisk {
    n = 0;
    override write(offset: number, data: Uint8Array): Promise<void> {
      if (++this.n === 20) return Promise.reject(new IoError('disk on fire'));
      return this.inner.write(offset, data);
    }
  }
  const disk = new Failing(new MemoryDisk(32 * MiB));
  const expected = await ExpectedDisk.create(disk.size, 1);
  const res = await new WorkloadExecutor({ disk, expected, requests: generator('moderate', disk.size, 1), durationMs: 5000, switchTo: async () => new MemoryDisk(32 * MiB) }).run();
  assert.match(res.error?.message ?? '', /disk on fire/);
  assert.equal(res.stopped, true);
  assert.equal(res.switchOver, undefined, 'EIO is not a cut-over');
  assert.ok(res.writes >= 19);
});

// ------------------------------------------------------------- switch-over

/**
 * The source side of a fake migration: serves the VM until `after` requests,
 * then refuses everything with ESHUTDOWN (as a source agent does at cut-over).
 */
class CutoverDisk extends FilterDisk {
  private n = 0;
  cut = false;
  refused = 0;
  private live = 0;
  /** In 'hang' mode: requests held without an answer. */
  private held: (() => void)[] = [];
  private idle: (() => void)[] = [];
  readonly cutDone: Promise<void>;
  private onCut: () => void = () => {};

  constructor(inner: Disk, private readonly after: number, private readonly mode: 'eshutdown' | 'hang' = 'eshutdown') {
    super(inner);
    this.cutDone = new Promise((r) => (this.onCut = r));
  }

  private gate(op: () => Promise<void>): Promise<void> {
    if (!this.cut && ++this.n > this.after) {
      this.cut = true;
      this.onCut();
    }
    if (this.cut) {
      this.refused++;
      if (this.mode === 'eshutdown') return Promise.reject(new ShutdownError('cut over to the target'));
      return new Promise<void>((_, reject) => this.held.push(() => reject(new ShutdownError('source agent gone'))));
    }
    this.live++;
    return op().finally(() => {
      if (--this.live === 0) for (const w of this.idle.splice(0)) w();
    });
  }

  /** Fails the held requests (after the connection is gone nobody hears it). */
  releaseHeld(): void {
    for (const r of this.held.splice(0)) r();
  }

  /** Resolves once no accepted request is still running. */
  drained(): Promise<void> {
    return this.live === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }

  override read(offset: number, into: Uint8Array): Promise<void> {
    return this.gate(() => this.inner.read(offset, into));
  }

  override write(offset: number, data: Uint8Array): Promise<void> {
    return this.gate(() => this.inner.write(offset, data));
  }
}

/** The target side: holds requests until the hand-over copy is complete. */
class GatedDisk extends FilterDisk {
  constructor(inner: Disk, private readonly ready: Promise<void>) {
    super(inner);
  }

  override read(offset: number, into: Uint8Array): Promise<void> {
    return this.ready.then(() => this.inner.read(offset, into));
  }

  override write(offset: number, data: Uint8Array): Promise<void> {
    return this.ready.then(() => this.inner.write(offset, data));
  }
}

async function copyDisk(from: Disk, to: Disk): Promise<void> {
  const buf = new Uint8Array(MiB);
  for (let off = 0; off < from.size; off += MiB) {
    await from.read(off, buf);
    await to.write(off, buf);
  }
}

async function switchOverRun(t: TestContext, mode: 'eshutdown' | 'hang') {
  const dir = tempDir(t);
  const size = 64 * MiB;
  // Some pre-existing content, kept as the base image for verifying never-written pages.
  const baseData = new Uint8Array(8 * MiB);
  new Prng(2).fill(baseData);
  const base = new MemoryDisk(size);
  await base.write(0, baseData);
  const srcMem = new MemoryDisk(size);
  await srcMem.write(0, baseData);
  const dstMem = new MemoryDisk(size);
  const source = new CutoverDisk(srcMem, 400, mode);
  let ready!: () => void;
  const target = new GatedDisk(dstMem, new Promise<void>((r) => (ready = r)));
  const src = await startServer(t, dir, [{ name: 'vm', disk: source }]);
  const dst = await startServer(t, dir, [{ name: 'vm', disk: target }]);
  // The "migration": at cut-over the source drains, hands its content over, and the target opens.
  void source.cutDone.then(async () => {
    if (mode === 'hang') {
      // The source agent goes away without answering the requests it holds.
      setTimeout(() => {
        void src.server.close(50);
        setTimeout(() => source.releaseHeld(), 300);
      }, 100);
    }
    await source.drained();
    await copyDisk(srcMem, dstMem);
    ready();
  });

  const primary = await NbdClient.connect(src.address, { exportName: 'vm' });
  const secondaries: NbdClient[] = [];
  t.after(async () => {
    await primary.close().catch(() => {});
    for (const s of secondaries) await s.close().catch(() => {});
  });
  const expected = await ExpectedDisk.create(size, 31, { base });
  const opts: ExecutorOptions = {
    disk: primary, expected, requests: generator('heavy', size, 31, 100e6), durationMs: 2500, queueDepth: 16,
    switchTo: async () => {
      const c = await NbdClient.connect(dst.address, { exportName: 'vm' });
      secondaries.push(c);
      return c;
    },
  };
  const exec = new WorkloadExecutor(opts);
  const res = await exec.run();
  assert.equal(res.error, undefined, res.error?.message);
  assert.ok(exec.switched);
  assert.equal(secondaries.length, 1, 'connected to the target once');
  const so = res.switchOver!;
  assert.ok(so, 'switch-over recorded');
  console.log(`${mode}: switched at ${so.atMs.toFixed(0)} ms, connect ${so.connectMs.toFixed(1)} ms, stall ${so.stallMs.toFixed(1)} ms, ${so.reissued} re-issued, ${so.lateCompletionsOnPrimary} late on primary; ${res.reads} reads ${res.writes} writes, ${res.verify.pagesChecked} pages checked`);
  assert.ok(so.atMs > 100 && so.atMs < 2500, `switched at ${so.atMs} ms`);
  assert.ok(so.reissued >= 1, 'the refused request(s) went to the target');
  assert.ok(so.stallMs >= 0 && so.stallMs < 2000, `stall ${so.stallMs} ms`);
  if (mode === 'eshutdown') assert.match(so.reason, /ESHUTDOWN|cut over/);
  assert.ok(source.refused >= 1);
  assert.ok(res.perSecond.some((s) => s.disk === 'both' || s.disk === 'secondary'));
  assert.ok(res.reads > 200 && res.writes > 50);
  assert.equal(res.verify.mismatches, 0, JSON.stringify(res.verify.firstMismatches));
  assert.equal(res.verify.pagesSkipped, 0, 'with a base every page is checked');
  // The target holds everything: every page the workload wrote, and the base elsewhere.
  const fin = await finalVerify(exec.disk, expected, { queueDepth: 8 });
  assert.equal(fin.scope, 'whole-disk');
  assert.equal(fin.mismatches, 0, JSON.stringify(expected.stats.firstMismatches));
  // And the check can fail: the source, abandoned at cut-over, lacks the later writes.
  const stale = await ExpectedDisk.create(size, 31, { base });
  stale.pages.set(expected.pages);
  const onSource = await finalVerify(srcMem, stale);
  assert.ok(onSource.mismatches > 0, 'writes after the cut-over are only on the target');
}

test('switch-over: the source answers ESHUTDOWN, the executor continues on the target with zero mismatches', { timeout: 20_000 }, async (t) => {
  await switchOverRun(t, 'eshutdown');
});

test('switch-over: the source stops answering and hangs up, the executor continues on the target', { timeout: 20_000 }, async (t) => {
  await switchOverRun(t, 'hang');
});
