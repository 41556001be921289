// NbdServer.whenIdle: what lets the source agent serve a VM until it disconnects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MemoryDisk } from '../../src/block/memory.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { NbdClient } from '../../src/nbd/client.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';

test('whenIdle resolves at once with no client, and only once the last of several clients has gone', async (t) => {
  const server = new NbdServer({ exports: [{ name: '', disk: new MemoryDisk(1 << 20) }] });
  const addr = await server.listen({ kind: 'unix', path: join(tempDir(t), 's.sock') });
  t.after(() => server.close());
  await server.whenIdle();
  const a = await NbdClient.connect(addr);
  const b = await NbdClient.connect(addr);
  await until(() => server.connectionCount === 2, 5000);
  let idle = false;
  const waiting = server.whenIdle().then(() => (idle = true));
  await a.close();
  await until(() => server.connectionCount === 1, 5000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(idle, false, 'one client is still connected');
  await b.read(0, Buffer.alloc(512));
  await b.close();
  await waiting;
  assert.equal(server.connectionCount, 0);
});
