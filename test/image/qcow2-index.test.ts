/**
 * `flimcd index add --format qcow2`: a qcow2 image is indexed as a VM on it
 * reads it (backing chain included), and a target copies blocks out of it
 * through a qemu-storage-daemon instead of receiving them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgentPair } from '../../src/demo/agent-pair.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { log } from '../../src/util/log.ts';
import { tempDir } from '../helpers/tmp.ts';
import { requirePeers, runOk } from '../helpers/peers.ts';
import { makeQcow2Chain } from '../helpers/qcow2-chain.ts';

const BS = 65536;

test('a qcow2 chain in the replica index: indexed through its backing file, and blocks are built from it at the target', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const { overlay } = await makeQcow2Chain(dir, 2 << 20, [5], BS, 'old.qcow2');

  const indexDir = join(dir, 'index');
  const ix = ReplicaIndex.open(indexDir);
  try {
    const r = await indexImage(ix, overlay, BS, undefined, 'qcow2');
    assert.equal(r.scannedBlocks, 32, 'every block of the chain, the overlay\'s and the base\'s');
    assert.equal(ix.image(overlay)?.format, 'qcow2');
  } finally {
    await ix.close();
  }

  // The VM's disk at A: what the overlay reads as, plus two new blocks.
  const src = join(dir, 'vm.img');
  await runOk('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', overlay, src]);
  const fresh = randomBytes(2 * BS);
  const img = readFileSync(src);
  fresh.copy(img, 20 * BS);
  writeFileSync(src, img);

  const pair = await startAgentPair({
    sourceImage: src, targetImage: join(dir, 'target.img'), dir, algorithm: 'flimcd', blockSize: BS, bandwidthBps: 200e6, rttMs: 2,
    security: { mode: 'insecure' }, log: log.child({ test: 'qcow2-index' }), target: { indexDir },
  });
  try {
    const report = await pair.source.migrate();
    assert.equal(report.verified, true);
    assert.equal(report.blocks.from_replica, 30, `from replica ${report.blocks.from_replica}`);
    assert.equal(report.blocks.sent_data, 2);
  } finally {
    await pair.close();
  }
  assert.ok(readFileSync(join(dir, 'target.img')).equals(readFileSync(src)));
});
