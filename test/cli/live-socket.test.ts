// A live unix socket is never taken over: export, source and target refuse a
// path another process listens on (exit 2, naming it), and that process keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { tempDir } from '../helpers/tmp.ts';

test('export, source and target refuse a socket path a running export serves; the export keeps serving', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'a.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 0x5a));
  const sock = join(dir, 'vm.sock');
  const first = await flimcdBackground(['export', '--image', img, '--listen', `unix:${sock}`], /serving/);
  t.after(() => first.child.kill('SIGKILL'));
  const other = join(dir, 'b.img');
  writeFileSync(other, Buffer.alloc(1 << 20));
  const attempts = {
    export: ['export', '--image', other, '--listen', `unix:${sock}`],
    source: ['source', '--insecure', '--image', other, '--nbd', `unix:${sock}`, '--to', 'tcp:127.0.0.1:1'],
    'target --nbd': ['target', '--insecure', '--image', join(dir, 'c.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${sock}`],
    'target --listen': ['target', '--insecure', '--image', join(dir, 'c.img'), '--listen', `unix:${sock}`, '--nbd', `unix:${join(dir, 'd.sock')}`],
  };
  for (const [what, args] of Object.entries(attempts)) {
    const r = await flimcd(args, { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    assert.ok(r.stderr.includes(sock) && /listening/.test(r.stderr), `${what} names the path and the listener: ${r.stderr}`);
  }
  const client = await NbdClient.connect({ kind: 'unix', path: sock });
  t.after(() => client.close());
  const data = Buffer.alloc(4096);
  await client.read(0, data);
  assert.ok(data.every((b) => b === 0x5a), 'the first export still serves its image');
});
