import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PresenceKind, PresenceLog, StateDir } from '../../src/migrate/state-dir.ts';
import { Bitmap } from '../../src/util/bitmap.ts';
import { SourceAgent } from '../../src/migrate/source-agent.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { log } from '../../src/util/log.ts';
import { UsageError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

test('state dir: JSON records are replaced whole; remove() leaves nothing', (t) => {
  const dir = tempDir(t);
  const s = StateDir.forImage(join(dir, 'vm.img'));
  assert.equal(s.path, join(dir, 'vm.img.flimcd'));
  assert.equal(s.readJson('x.json'), undefined);
  s.writeJson('x.json', { a: 1 });
  s.writeJson('x.json', { a: 2 });
  assert.deepEqual(s.readJson('x.json'), { a: 2 });
  assert.ok(!existsSync(s.file('x.json.tmp')));
  writeFileSync(s.file('bad.json'), '{"a":');
  assert.throws(() => s.readJson('bad.json'), (e: unknown) => e instanceof UsageError && /unreadable.*remove/.test((e as Error).message));
  s.remove();
  assert.ok(!existsSync(s.path));
});

test('presence log: concurrent appends share fsyncs (group commit), replay rebuilds the maps, a torn tail is ignored', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'presence.log');
  let dataSyncs = 0;
  const logf = await PresenceLog.open(path, async () => { dataSyncs++; });
  const appends: Promise<void>[] = [];
  for (let b = 0; b < 1000; b++) appends.push(logf.append(PresenceKind.PRESENT, [b]));
  appends.push(logf.append(PresenceKind.WRITTEN, [5, 7]));
  await Promise.all(appends);
  assert.ok(logf.commits >= 1 && logf.commits <= 3, `${logf.commits} commits for 1001 appends`);
  assert.equal(dataSyncs, logf.commits, 'the image is synced before each log commit');
  assert.equal(logf.records, 1002);
  await logf.close();
  appendFileSync(path, Buffer.from([0x00, 0x00])); // a torn record from a crash mid-write
  const missing = new Bitmap(2000, true);
  const written = new Bitmap(2000);
  const { readFileSync } = await import('node:fs');
  PresenceLog.replay(readFileSync(path), missing, written);
  assert.equal(missing.count, 1000, 'blocks 0..999 present, 1000..1999 still missing');
  assert.ok(!missing.get(999) && missing.get(1000));
  assert.deepEqual([written.get(5), written.get(7), written.get(6)], [true, true, false]);
});

test('a source with state from a different image size refuses to start, naming the state dir', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 4 * 1024 * 1024, { seed: 1 });
  new StateDir(`${img}.flimcd`).writeJson('source.json', { session: 'abc', imageSize: 8 * 1024 * 1024, blockSize: 65536, algorithm: 'flimcd', phase: 'precopy' });
  await assert.rejects(
    SourceAgent.start({ image: img, security: { mode: 'insecure' }, nbd: { kind: 'unix', path: join(dir, 's.sock') }, to: { kind: 'tcp', host: '127.0.0.1', port: 1 }, algorithm: 'flimcd', blockSize: 65536, log }),
    (e: unknown) => e instanceof UsageError && e.message.includes(`${img}.flimcd`) && e.message.includes('8388608'),
  );
});

test('a target holding an unfinished session refuses a different one with a clear error (never mixes two migrations)', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'src.img');
  await generateImage(img, 4 * 1024 * 1024, { seed: 1 });
  const dst = join(dir, 'dst.img');
  new StateDir(`${dst}.flimcd`).writeJson('target.json', { session: 'an-older-session', imageSize: 4 * 1024 * 1024, blockSize: 65536, phase: 'precopy' });
  const target = new TargetAgent({ image: dst, security: { mode: 'insecure' }, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, 't.sock') }, log });
  const addr = await target.listen();
  const source = await SourceAgent.start({ image: img, security: { mode: 'insecure' }, nbd: { kind: 'unix', path: join(dir, 's.sock') }, to: addr, algorithm: 'hybrid', blockSize: 65536, log, connectTimeoutMs: 5000 });
  t.after(async () => { await source.close(); await target.close(); });
  await assert.rejects(source.migrate(), (e: unknown) => (e as { code?: string }).code === 'FLIMCD_ERR_TARGET_STALE_STATE' && /an-older-session.*remove the directory/.test((e as Error).message));
});

test('a source resuming with another --algorithm is refused like another --block-size, naming the state', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, Buffer.alloc(1 << 20));
  new StateDir(join(dir, 'state')).writeJson('source.json', {}); // creates the directory
  writeFileSync(join(dir, 'state', 'source.json'), JSON.stringify({ session: 'abc', imageSize: 1 << 20, blockSize: 65536, algorithm: 'precopy', phase: 'precopy' }));
  const start = (algorithm: 'precopy' | 'flimcd') => SourceAgent.start({ image: img, stateDir: join(dir, 'state'), nbd: { kind: 'unix', path: join(dir, 's.sock') }, to: { kind: 'tcp', host: '127.0.0.1', port: 1 }, security: { mode: 'insecure' }, algorithm, blockSize: 65536, log });
  await assert.rejects(start('flimcd'), (e: unknown) => e instanceof UsageError && /--algorithm precopy, not flimcd/.test((e as Error).message) && (e as Error).message.includes(join(dir, 'state')));
  const same = await start('precopy');
  await same.close();
});
