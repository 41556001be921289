// `flimcd plan --target`: the running target agent answers which blocks it can
// build from what it holds (its replica index, its old copy of the image), over
// the agents' own TLS-PSK link, without migrating; and then still takes the
// migration itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { formatPskFile } from '../../src/cli/security-options.ts';

const MiB = 2 ** 20;

async function startTarget(dir: string, psk: string, extra: string[], image = join(dir, 'dst.img')) {
  const t = await flimcdBackground(['target', '--psk-file', psk, '--image', image, '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, `dst-${randomBytes(3).toString('hex')}.sock`)}`, '--json', ...extra], /"event":"listening"/);
  return { child: t.child, listen: JSON.parse(t.line).listen as string, exited: t.exited };
}

test('plan --target: the target agent\'s index answers over the link as a local --index does; the agent then takes the migration', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 16 * MiB, { seed: 8 });
  // The base the VM was cloned from: the image with its second half changed since.
  const base = join(dir, 'base.img');
  const b = readFileSync(img);
  randomBytes(8 * MiB).copy(b, 8 * MiB);
  writeFileSync(base, b);
  const idx = join(dir, 'index');
  assert.equal((await flimcd(['index', 'add', '--index', idx, base])).code, 0);
  const psk = join(dir, 'link.psk');
  writeFileSync(psk, formatPskFile('flimcd-plan', randomBytes(32)), { mode: 0o600 });
  const target = await startTarget(dir, psk, ['--index', idx, '--exit-when-done']);
  t.after(() => target.child.kill('SIGKILL'));

  const args = ['plan', '--image', img, '--bandwidth', '50Mbit', '--rtt', '20ms', '--workload', 'light', '--algorithm', 'precopy,flimcd', '--json'];
  const local = JSON.parse((await flimcd([...args, '--index', idx])).stdout);
  const r = await flimcd([...args, '--target', target.listen, '--psk-file', psk]);
  assert.equal(r.code, 0, r.stderr);
  const remote = JSON.parse(r.stdout);
  assert.ok(remote.target_blocks > 0, 'the target holds part of the image');
  assert.equal(remote.target_blocks, local.index_blocks, 'the agent answers as the index itself does');
  const wire = (p: { rows: Array<{ algorithm: string; wire_bytes: number }> }) => p.rows.find((x) => x.algorithm === 'flimcd')!.wire_bytes;
  assert.ok(Math.abs(wire(remote) - wire(local)) <= 0.05 * wire(local), `${wire(remote)} vs ${wire(local)}`);
  assert.equal(existsSync(join(dir, 'dst.img')), false, 'a plan probe writes no image at the target');

  // The probe left the agent ready for the real migration.
  const s = await flimcd(['source', '--psk-file', psk, '--image', img, '--to', target.listen, '--nbd', `unix:${join(dir, 'src.sock')}`, '--bandwidth', '200Mbit', '--json'], { timeoutMs: 120_000 });
  assert.equal(s.code, 0, s.stderr);
  assert.ok(readFileSync(join(dir, 'dst.img')).equals(readFileSync(img)), 'the target image is the source image');
  await target.exited;
});

test('plan --target: an old copy of the image at the target counts; a busy, absent or wrongly keyed target is a clear error', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 8 * MiB, { seed: 9 });
  // The target's image is an older copy: all but the first MiB is still the same.
  const old = readFileSync(img);
  randomBytes(MiB).copy(old, 0);
  const dst = join(dir, 'old.img');
  writeFileSync(dst, old);
  const psk = join(dir, 'link.psk');
  writeFileSync(psk, formatPskFile('flimcd-plan', randomBytes(32)), { mode: 0o600 });
  const target = await startTarget(dir, psk, [], dst);
  t.after(() => target.child.kill('SIGKILL'));
  const args = ['plan', '--image', img, '--bandwidth', '50Mbit', '--rtt', '20ms', '--workload', 'light', '--algorithm', 'flimcd', '--json', '--target', target.listen];
  const r = await flimcd([...args, '--psk-file', psk]);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout);
  // Every non-zero block past the first MiB (zero blocks are never asked: they travel as ZERO).
  const cur = readFileSync(img);
  let expected = 0;
  for (let o = MiB; o < cur.length; o += 65536) if (cur.subarray(o, o + 65536).some((x) => x !== 0)) expected++;
  assert.ok(expected > 50);
  assert.equal(p.target_blocks, expected);
  assert.ok(readFileSync(dst).equals(old), 'the old copy is untouched');

  const wrong = join(dir, 'wrong.psk');
  writeFileSync(wrong, formatPskFile('flimcd-plan', randomBytes(32)), { mode: 0o600 });
  const w = await flimcd([...args, '--psk-file', wrong]);
  assert.notEqual(w.code, 0);
  assert.match(w.stderr, /--target|authentication|refused|key/i);
  const none = await flimcd([...args.slice(0, -1), 'tcp:127.0.0.1:1', '--psk-file', psk]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /cannot reach the target agent at tcp:127\.0\.0\.1:1/);
  const nocred = await flimcd(args);
  assert.equal(nocred.code, 2);
  assert.match(nocred.stderr, /credentials/);

  // Once a migration is under way the target's image is in flux: a plan probe is refused.
  const src = await flimcdBackground(['source', '--psk-file', psk, '--image', img, '--to', target.listen, '--nbd', `unix:${join(dir, 'src.sock')}`, '--bandwidth', '10Mbit', '--manual-cutover', '--json'], /"event":"listening"/);
  t.after(() => src.child.kill('SIGKILL'));
  let busy;
  for (let i = 0; i < 50; i++) {
    busy = await flimcd([...args, '--psk-file', psk]);
    if (busy.code !== 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(busy, 'the probe ran');
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, /refused the plan probe: this target agent has a migration under way/);
});
