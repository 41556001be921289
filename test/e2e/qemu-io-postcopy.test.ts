// qemu-io acting as the VM at the target during post-copy: reads of blocks the
// target does not have yet are fetched on demand and return the source's data;
// writes there survive the rest of the migration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSync, writeSync, closeSync, ftruncateSync, readFileSync } from 'node:fs';
import { nbdUri } from '../../src/util/address.ts';
import { log } from '../../src/util/log.ts';
import { requirePeers, run } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startAgentPair } from '../helpers/agent-pair.ts';

const MiB = 1024 * 1024;

test('qemu-io reads correct data at the target during post-copy, and its writes survive', async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const fd = openSync(src, 'w');
  ftruncateSync(fd, 64 * MiB);
  // Distinct patterns in many places, so any misplaced or stale block shows.
  for (let i = 0; i < 64; i++) writeSync(fd, Buffer.alloc(MiB, 0x10 + i), 0, MiB, i * MiB);
  closeSync(fd);

  // A slow link: post-copy takes ~25 s, so qemu-io's reads mostly hit missing blocks.
  const pair = await startAgentPair({ dir, sourceImage: src, algorithm: 'postcopy', bandwidthBps: 20e6, rttMs: 20, log });
  t.after(() => pair.close());
  const { source, target } = pair;

  let postcopy!: () => void;
  const inPostcopy = new Promise<void>((r) => (postcopy = r));
  const phases: string[] = [];
  const poll = setInterval(() => {
    const p = String(target.status().phase);
    if (phases.at(-1) !== p) phases.push(p);
    if (p === 'postcopy') postcopy();
  }, 20);
  const migrating = source.migrate();
  await inPostcopy;
  clearInterval(poll);
  const uri = nbdUri(target.nbdAddress!, '');
  // Reads spread over the disk (mostly still missing), a partial write into a missing block, a whole-block write.
  const cmds = [
    'read -P 0x4f 63M 1M', 'read -P 0x10 0 64k', 'read -P 0x2a 26M 4k', 'read -P 0x33 35M 100k',
    'write -P 0xee 40M 512', 'read -P 0xee 40M 512', 'read -P 0x38 40M+512 65024',
    'write -P 0xdd 50M 64k', 'read -P 0xdd 50M 64k',
  ].map((c) => c.replace(/(\d+)M\+(\d+)/, (_, m, k) => String(Number(m) * MiB + Number(k))));
  const r = await run('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])], { timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /fail/i, r.stdout);
  const statusDuring = target.status();
  const report = await migrating;
  await target.result();
  assert.equal(report.verified, true);
  assert.ok(Number(statusDuring.missBlocks) > 0, 'qemu-io hit missing blocks (fetched on demand)');
  const out = readFileSync(pair.dst);
  assert.ok(out.subarray(40 * MiB, 40 * MiB + 512).every((b) => b === 0xee), 'partial write kept');
  assert.ok(out.subarray(40 * MiB + 512, 41 * MiB).every((b) => b === 0x38), 'rest of that block fetched from the source');
  assert.ok(out.subarray(50 * MiB, 50 * MiB + 65536).every((b) => b === 0xdd), 'whole-block write kept, push skipped it');
  assert.ok(out.subarray(63 * MiB).every((b) => b === 0x4f));
});
