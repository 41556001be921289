// The agents' link as an operator meets it: no credentials is a usage error,
// a wrong peer is refused and logged while the target waits on for the right
// one, and migrations over TLS (certificates) and --insecure end verified.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

test('source and target without link credentials exit with a usage error that says what to pass', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 1 << 20, { seed: 1 });
  for (const args of [
    ['source', '--image', src, '--to', 'tcp:127.0.0.1:1', '--nbd', `unix:${join(dir, 's.sock')}`],
    ['target', '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 't.sock')}`],
  ]) {
    const r = await flimcd(args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--tls-ca FILE --tls-cert FILE --tls-key FILE.*--psk-file FILE.*--insecure/);
    const mixed = await flimcd([...args, '--insecure', '--psk-file', join(dir, 'x')]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /choose one/);
  }
  const certsHelp = await flimcd(['certs', '--help']);
  assert.equal(certsHelp.code, 0);
  assert.match(certsHelp.stdout, /--out <dir>.*\n[\s\S]*--psk <file>/);
  assert.equal((await flimcd(['certs'])).code, 2);
});

test('a target with certificates refuses a PSK source and a plaintext source, logs both, then migrates the right source byte-exact', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 8 << 20, { seed: 3 });
  const pki = join(dir, 'pki');
  assert.equal((await flimcd(['certs', '--out', pki, '--json'])).code, 0);
  const psk = join(dir, 'link.psk');
  assert.equal((await flimcd(['certs', '--psk', psk])).code, 0);
  const tls = (role: string) => ['--tls-ca', join(pki, 'ca.crt'), '--tls-cert', join(pki, `${role}.crt`), '--tls-key', join(pki, `${role}.key`)];
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });
  const target = await flimcdBackground(['target', ...tls('target'), '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--exit-when-done', '--json'], /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'info' } });
  kids.push(target.child);
  const addr = JSON.parse(target.line).listen as string;
  const source = (extra: string[]) => flimcd(['source', ...extra, '--image', src, '--to', addr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--json'], { timeoutMs: 60_000 });

  const wrongKey = await source(['--psk-file', psk]);
  assert.equal(wrongKey.code, 1, wrongKey.stderr);
  assert.match(wrongKey.stderr, /TLS link to tcp:127\.0\.0\.1:\d+ failed/);
  const plain = await source(['--insecure']);
  assert.equal(plain.code, 1, plain.stderr);
  assert.match(plain.stderr, /requires TLS: give the source the same --psk-file or --tls-\* credentials/, 'told at once, not after silent closes');
  const ok = await source(tls('source'));
  assert.equal(ok.code, 0, ok.stderr.slice(-2000));
  const report = JSON.parse(ok.stdout.split('\n').find((l) => l.includes('"event":"report"'))!);
  assert.equal(report.verified, true);
  const tgt = await target.exited;
  assert.equal(tgt.code, 0, tgt.stderr.slice(-2000));
  assert.ok(readFileSync(join(dir, 'dst.img')).equals(readFileSync(src)), 'target image byte-exact');
  const refused = tgt.stderr.split('\n').filter((l) => l.includes('refused a link connection')).map((l) => JSON.parse(l));
  assert.ok(refused.length >= 2, tgt.stderr.slice(-3000));
  for (const r of refused) assert.ok(r.reason && r.peer, JSON.stringify(r));
});

test('a TLS source facing an --insecure target is refused at once with a reason on both sides', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 1 << 20, { seed: 6 });
  const psk = join(dir, 'link.psk');
  assert.equal((await flimcd(['certs', '--psk', psk])).code, 0);
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });
  const target = await flimcdBackground(['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--json'], /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'info' } });
  kids.push(target.child);
  const addr = JSON.parse(target.line).listen as string;
  const t0 = Date.now();
  const r = await flimcd(['source', '--psk-file', psk, '--image', src, '--to', addr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--json'], { timeoutMs: 30_000 });
  assert.equal(r.code, 1, r.stderr.slice(-2000));
  assert.match(r.stderr, /TLS link to tcp:127\.0\.0\.1:\d+ failed: .*protocol version.*both --insecure/);
  assert.ok(Date.now() - t0 < 15_000, 'not retried until the link timeout');
  await new Promise((res) => setTimeout(res, 200));
  assert.match(target.output().stderr, /the source speaks TLS, but this target runs --insecure/);
});

test('--insecure on both sides migrates over plaintext, and says so in the log', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 4 << 20, { seed: 4 });
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });
  const target = await flimcdBackground(['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--exit-when-done', '--json'], /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'info' } });
  kids.push(target.child);
  const addr = JSON.parse(target.line).listen as string;
  const ok = await flimcd(['source', '--insecure', '--image', src, '--to', addr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--json'], { timeoutMs: 60_000 });
  assert.equal(ok.code, 0, ok.stderr.slice(-2000));
  const tgt = await target.exited;
  assert.equal(tgt.code, 0);
  assert.match(tgt.stderr, /plaintext and unauthenticated/);
  assert.ok(readFileSync(join(dir, 'dst.img')).equals(readFileSync(src)));
});
