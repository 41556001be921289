// NBD has no authentication of its own: exports default to unix sockets or
// loopback, and a server reachable from the network says so in its log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MemoryDisk } from '../../src/block/memory.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { isLoopbackHost } from '../../src/util/address.ts';
import { flimcd } from '../helpers/cli.ts';

async function warningsFor(host: string): Promise<string[]> {
  const msgs: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { for (const l of String(c).split('\n')) if (l) msgs.push(JSON.parse(l).msg); cb(); } });
  const server = new NbdServer({ exports: [{ name: '', disk: new MemoryDisk(1 << 16) }], log: pino({ level: 'warn' }, stream) });
  await server.listen({ kind: 'tcp', host, port: 0 });
  await server.close();
  return msgs;
}

test('an NBD server on a non-loopback address warns; on loopback it does not', async () => {
  assert.deepEqual(await warningsFor('127.0.0.1'), []);
  const w = await warningsFor('0.0.0.0');
  assert.equal(w.length, 1);
  assert.match(w[0]!, /reachable from the network.*no authentication/);
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
});

test('the VM exports of source, target and export default to a unix socket or loopback', async () => {
  for (const [cmd, flag] of [['source', '--nbd'], ['target', '--nbd'], ['export', '--listen']] as const) {
    const h = await flimcd([cmd, '--help']);
    const line = h.stdout.replace(/\n\s{8,}/g, ' ').split('\n').find((l) => l.trimStart().startsWith(flag))!;
    const def = /\(default: "([^"]+)"\)/.exec(line)?.[1];
    assert.ok(def && (def.startsWith('unix:') || /^tcp:127\./.test(def)), `${cmd} ${flag} defaults to ${def}`);
  }
});
