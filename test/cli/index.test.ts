// `flimcd index` as an operator uses it, then a target agent process with
// --index: the base image's blocks are built at the target, not sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFileSync, openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { generateImage } from '../../src/workload/image-gen.ts';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { Prng } from '../../src/workload/prng.ts';

test('index add/ls/rm, and a migration to a target process with --index sends only what the base lacks', async (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.img');
  await generateImage(base, 16 * 1024 * 1024, { seed: 21 });
  const ix = join(dir, 'ix');
  const add = await flimcd(['index', 'add', '--index', ix, base, '--json']);
  assert.equal(add.code, 0, add.stderr);
  const added = JSON.parse(add.stdout.trim());
  assert.equal(added.event, 'added');
  assert.ok(added.scannedBlocks > 100, JSON.stringify(added));
  const ls = await flimcd(['index', 'ls', '--index', ix, '--json']);
  assert.equal(ls.code, 0);
  const list = JSON.parse(ls.stdout);
  assert.equal(list.length, 1);
  assert.equal(list[0].path, base);
  assert.equal(list[0].blockSize, 65536);
  // Bad input: a clear message and exit code 2.
  const missing = await flimcd(['index', 'add', '--index', ix, join(dir, 'nope.img')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.img does not exist/);
  const bs = await flimcd(['index', 'add', '--index', ix, base, '--block-size', '3KiB']);
  assert.equal(bs.code, 2);
  assert.match(bs.stderr, /--block-size/);

  // The VM's disk: the base with 16 blocks rewritten.
  const vm = join(dir, 'vm.img');
  copyFileSync(base, vm);
  const fd = openSync(vm, 'r+');
  const rng = new Prng(22);
  const blk = Buffer.allocUnsafe(65536);
  for (let i = 0; i < 16; i++) {
    rng.fill(blk);
    writeSync(fd, blk, 0, blk.length, (i * 13 % 256) * 65536);
  }
  closeSync(fd);

  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });
  const psk = join(dir, 'link.psk');
  assert.equal((await flimcd(['certs', '--psk', psk])).code, 0);
  const target = await flimcdBackground(['target', '--psk-file', psk, '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--index', ix, '--exit-when-done', '--json'], /"event":"listening"/);
  kids.push(target.child);
  const addr = JSON.parse(target.line).listen as string;
  const source = await flimcd(['source', '--psk-file', psk, '--image', vm, '--to', addr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--json'], { timeoutMs: 60000 });
  assert.equal(source.code, 0, source.stderr.slice(-2000));
  const report = JSON.parse(source.stdout.split('\n').find((l) => l.includes('"event":"report"'))!);
  assert.equal(report.verified, true);
  assert.ok(report.blocks.from_replica > 100, `from replica ${report.blocks.from_replica}`);
  assert.ok(report.blocks.sent_data <= 16, `data blocks ${report.blocks.sent_data}`);
  const tgt = await target.exited;
  assert.equal(tgt.code, 0, tgt.stderr.slice(-2000));
  assert.ok(readFileSync(join(dir, 'dst.img')).equals(readFileSync(vm)), 'target byte-exact');
  // The target recorded what it received: the index now lists its image too.
  const ls2 = JSON.parse((await flimcd(['index', 'ls', '--index', ix, '--json'])).stdout);
  assert.deepEqual(ls2.map((i: { kind: string }) => i.kind).sort(), ['received', 'registered']);
  const rm = await flimcd(['index', 'rm', '--index', ix, base, '--json']);
  assert.equal(rm.code, 0);
  assert.equal(JSON.parse(rm.stdout.trim()).entries, added.newIds);
});
