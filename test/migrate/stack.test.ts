// The stack builder wires both sides on the runtime it is handed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/block/memory.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';
import { REAL_RUNTIME, type Runtime } from '../../src/runtime.ts';
import { buildSourceDisks, buildSourceStack, buildTargetStack } from '../../src/migrate/stack.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';

const BS = 65536;

test('a source and a target stack migrate an image over a link and verify; the frames use the runtime\'s checksum', async () => {
  const size = 32 * BS;
  const original = Buffer.allocUnsafe(size);
  new Prng(3).fill(original);
  const srcImage = new MemoryDisk(size);
  await srcImage.write(0, original);
  const tgtImage = new MemoryDisk(size);
  let checksummed = 0;
  const runtime: Runtime = {
    ...REAL_RUNTIME,
    frameChecksum: { parts: (h, p) => (checksummed++, REAL_RUNTIME.frameChecksum.parts(h, p)), whole: (h, p) => REAL_RUNTIME.frameChecksum.whole(h, p) },
  };
  const quiet = log.child({ test: 'stack' });
  const source = buildSourceStack({ runtime, image: srcImage, engine: { algorithm: 'hybrid', blockSize: BS, log: quiet } });
  const target = buildTargetStack({ runtime, image: tgtImage, blockSize: BS, engine: { log: quiet } });
  assert.equal(source.gate.status, 'open', 'the VM runs at the source');
  assert.equal(target.gate.status, 'held', 'the target holds the VM\'s I/O until the cut-over');
  const [a, b] = memoryLink(runtime.clock, { bandwidthBps: 1e9, delayMs: 1 });
  source.channel.attach(a);
  target.channel.attach(b);
  try {
    const report = await source.engine.run();
    await target.engine.result;
    assert.equal(report.verified, true);
    const got = Buffer.alloc(size);
    await tgtImage.read(0, got);
    assert.ok(got.equals(original));
    assert.ok(checksummed > 32, `frames went through the runtime's checksum (${checksummed})`);
    // The target serves the VM now; the source turns it away.
    assert.equal(target.gate.status, 'open');
    assert.equal(source.gate.status, 'closed');
  } finally {
    source.channel.close();
    target.channel.close();
  }
});

test('source disks: a restarted source whose cut-over had begun starts with the VM\'s I/O held', () => {
  const disks = buildSourceDisks({ runtime: REAL_RUNTIME, image: new MemoryDisk(4 * BS), blockSize: BS, gate: 'held' });
  assert.equal(disks.gate.status, 'held');
  assert.equal(disks.tracking.trackBlockSize, BS);
});
