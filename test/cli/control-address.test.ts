// A --control address that cannot be listened on is a start-up error (exit 2)
// for source and target: they do not run on without control, and leave no socket behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

test('source and target refuse a --control address they cannot listen on: exit 2, nothing left running', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'a.img');
  writeFileSync(img, Buffer.alloc(1 << 20));
  const bad = { 'missing directory': `unix:${join(dir, 'no', 'such', 'c.sock')}`, 'non-loopback host': 'tcp:192.0.2.1:9000' };
  for (const [why, control] of Object.entries(bad)) {
    const nbd = join(dir, 'src.sock');
    const source = await flimcd(['source', '--insecure', '--image', img, '--nbd', `unix:${nbd}`, '--to', 'tcp:127.0.0.1:1', '--control', control], { timeoutMs: 20_000 });
    assert.equal(source.code, 2, `source, ${why}: ${source.stderr}`);
    assert.match(source.stderr, /control endpoint/);
    assert.ok(!existsSync(nbd), `source, ${why}: the NBD socket is removed`);
    const link = join(dir, 'link.sock');
    const target = await flimcd(['target', '--insecure', '--image', join(dir, 'b.img'), '--listen', `unix:${link}`, '--nbd', `unix:${join(dir, 'dst.sock')}`, '--control', control], { timeoutMs: 20_000 });
    assert.equal(target.code, 2, `target, ${why}: ${target.stderr}`);
    assert.match(target.stderr, /control endpoint/);
    assert.ok(!existsSync(link), `target, ${why}: the link socket is removed`);
  }
});
