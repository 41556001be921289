// Stale unix sockets are removed before listening; live sockets and other
// files never are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeStaleSocket, socketAlive } from '../../src/util/unix-socket.ts';
import { UsageError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';
import { leaveStaleSocket } from '../helpers/net.ts';

test('a socket left by a dead process is removed; a live one and a regular file are refused; a missing path is fine', async (t) => {
  const dir = tempDir(t);
  const stale = join(dir, 'stale.sock');
  await leaveStaleSocket(stale);
  assert.ok(lstatSync(stale).isSocket());
  assert.equal(await socketAlive(stale), false);
  await removeStaleSocket(stale, '--listen');
  assert.ok(!existsSync(stale));

  const live = join(dir, 'live.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(live, r));
  t.after(() => server.close());
  assert.equal(await socketAlive(live), true);
  await assert.rejects(removeStaleSocket(live, '--listen'), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, `--listen: another process is listening at unix:${live}`);
    return true;
  });
  assert.ok(lstatSync(live).isSocket(), 'the live socket is still there');

  const file = join(dir, 'regular');
  writeFileSync(file, 'keep me');
  await assert.rejects(removeStaleSocket(file, 'control endpoint'), /control endpoint: .*regular exists and is not a socket/);
  assert.ok(existsSync(file));

  await removeStaleSocket(join(dir, 'nothing-here'), '--listen');
});
