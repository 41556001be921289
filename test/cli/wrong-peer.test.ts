// A --to (or --target, --control) that is not a flimcd agent: the command
// says what answered after its first reply and exits 1 at once, instead of
// retrying with "frame of 1312965709 bytes" or a raw OpenSSL error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { makePskFile } from '../../src/cli/commands/certs.ts';

async function httpServer(t: { after: (f: () => unknown) => void }): Promise<string> {
  const server = http.createServer((_req, res) => res.end('<html><body>a web page</body></html>'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return `tcp:127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('source --to an HTTP or an NBD server: "not a flimcd agent: it speaks …", exit 1, no retrying', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 3));
  const psk = join(dir, 'link.psk');
  makePskFile(psk, 'flimcd', false);
  const web = await httpServer(t);
  const nbd = await flimcdBackground(['export', '--image', img, '--read-only', '--listen', 'tcp:127.0.0.1:0', '--json'], /listening/);
  t.after(() => { nbd.child.kill('SIGKILL'); });
  const nbdAddr = `tcp:${/"address":"tcp:([^"]+)"/.exec(nbd.line)![1]}`;
  let n = 0;
  for (const [to, speaks] of [[web, 'HTTP'], [nbdAddr, 'NBD']] as const) {
    for (const security of [['--insecure'], ['--psk-file', psk]]) {
      const t0 = Date.now();
      const r = await flimcd(['source', ...security, '--image', img, '--to', to, '--nbd', `unix:${join(dir, `s${n}.sock`)}`, '--state-dir', join(dir, `state${n++}`)], { timeoutMs: 60_000 });
      assert.equal(r.code, 1, `${to} ${security[0]}: ${r.stderr.slice(-600)}`);
      assert.match(r.stderr, new RegExp(`${to} is not a flimcd agent: it speaks ${speaks}`), r.stderr.slice(-600));
      assert.doesNotMatch(r.stderr, /frame of \d+ bytes|wrong version number|retrying/);
      assert.ok(Date.now() - t0 < 30_000, 'at once, not after --link-timeout');
    }
  }
});

test('status, cutover and abort against a web server say it is not a flimcd agent instead of printing its page', async (t) => {
  const web = await httpServer(t);
  for (const cmd of ['status', 'cutover', 'abort']) {
    const r = await flimcd([cmd, '--control', web]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${web} is not a flimcd agent's control endpoint`));
    assert.doesNotMatch(r.stdout + r.stderr, /<html>/);
  }
});
