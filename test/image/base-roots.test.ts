// A base image's root is computed once per base (its file identity), not once
// per overlay: the cache itself, and two target agents with overlays on one
// base (real qcow2 chains through qemu-storage-daemon) hashing it once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { BaseRoots, baseRootKey } from '../../src/image/base-roots.ts';
import { startAgentPair } from '../../src/demo/agent-pair.ts';
import { baseRoot } from '../../src/image/from-backing.ts';
import { StateDir } from '../../src/migrate/state-dir.ts';
import { REAL_RUNTIME } from '../../src/runtime.ts';
import { tempDir } from '../helpers/tmp.ts';
import { requirePeers, runOk } from '../helpers/peers.ts';
import { makeQcow2Chain } from '../helpers/qcow2-chain.ts';

const BS = 65536;

test('a root is computed once per key, shared while under way, forgotten when it fails, and the least recently used goes first', async () => {
  const roots = new BaseRoots(2);
  let calls = 0;
  const compute = (root: string) => () => {
    calls++;
    return new Promise<string>((r) => setImmediate(() => r(root)));
  };
  const [a, b] = await Promise.all([roots.get('a', compute('ra')), roots.get('a', compute('other'))]);
  assert.deepEqual([a, b, calls], ['ra', 'ra', 1], 'the second ask shares the first computation');
  await assert.rejects(roots.get('bad', () => Promise.reject(new Error('unreadable'))), /unreadable/);
  assert.equal(await roots.get('bad', compute('rbad')), 'rbad', 'a failure is not kept');
  // Bound 2: 'a' (used before 'bad') goes when 'c' comes; 'bad' stays.
  await roots.get('c', compute('rc'));
  calls = 0;
  await roots.get('bad', compute('x'));
  assert.equal(calls, 0);
  await roots.get('a', compute('ra'));
  assert.equal(calls, 1, 'the least recently used was dropped');
  assert.equal(roots.stats.computed, 5);
});

test('the key is the file identity, block size and id format', () => {
  const st = { dev: 2049, ino: 77, size: 1 << 20, mtimeMs: 1700000000123.5 };
  assert.notEqual(baseRootKey(st, BS, 'blake3'), baseRootKey({ ...st, ino: 78 }, BS, 'blake3'));
  assert.notEqual(baseRootKey(st, BS, 'blake3'), baseRootKey({ ...st, mtimeMs: st.mtimeMs + 1 }, BS, 'blake3'));
  assert.notEqual(baseRootKey(st, BS, 'blake3'), baseRootKey(st, 4096, 'blake3'));
  assert.notEqual(baseRootKey(st, BS, 'blake3'), baseRootKey(st, BS, 'sha256'));
});

test('a restarted agent (a new cache) takes the root from its state directory; a base changed since is hashed again', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'base.raw');
  writeFileSync(file, randomBytes(4 * BS));
  const state = new StateDir(join(dir, 'state'));
  mkdirSync(state.path);
  const lines: Array<{ msg?: string }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg?: string }) });
  const root = (roots: BaseRoots) => baseRoot({ file, format: 'raw', blockSize: BS, state, roots, runtime: REAL_RUNTIME, log });
  const hashes = () => lines.filter((l) => /hashed the backing file/.test(l.msg ?? '')).length;
  const first = await root(new BaseRoots());
  assert.equal(await root(new BaseRoots()), first);
  assert.equal(hashes(), 1, 'the second agent read the state directory');
  writeFileSync(file, randomBytes(4 * BS));
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(await root(new BaseRoots()), first);
  assert.equal(hashes(), 2, 'a changed base is hashed again');
});

test('two targets with overlays on one base hash that base once; both end verified with the base\'s blocks not sent', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-io', 'qemu-storage-daemon')) return;
  const dir = tempDir(t);
  const { base, overlay } = await makeQcow2Chain(dir, 4 << 20, [1, 9], BS);
  const overlay2 = join(dir, 'vm2.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay2]);
  const targetBase = join(dir, 'target-base.qcow2');
  copyFileSync(base, targetBase);
  // The agents' log lines, to count the hashing each one does.
  const lines: Array<{ agent?: string; msg?: string }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { agent?: string; msg?: string }) });
  const roots = new BaseRoots();
  for (const [i, source] of [overlay, overlay2].entries()) {
    const pairDir = join(dir, `pair${i}`);
    mkdirSync(pairDir);
    const pair = await startAgentPair({
      sourceImage: source, targetImage: join(pairDir, 'target.qcow2'), dir: pairDir, algorithm: 'flimcd', blockSize: BS, bandwidthBps: 200e6, rttMs: 2,
      security: { mode: 'insecure' }, log, source: { format: 'qcow2' }, target: { backing: { file: targetBase, format: 'qcow2' }, baseRoots: roots },
    });
    try {
      const report = await pair.source.migrate();
      assert.equal(report.verified, true);
      assert.ok(report.blocks.from_backing >= 64 - 2, `from_backing ${report.blocks.from_backing}: the bases matched`);
    } finally {
      await pair.close();
    }
    await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', source, join(pairDir, 'target.qcow2')]);
  }
  const hashed = lines.filter((l) => l.agent === 'target' && /hashed the backing file/.test(l.msg ?? ''));
  assert.equal(hashed.length, 1, 'the targets hashed their shared base once');
  assert.equal(roots.stats.computed, 1);
});
