import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp.ts';
import { QmpError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

type Handler = (cmd: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, send: (o: unknown) => void, sock: net.Socket) => void;

/** A fake QMP server: greeting, capabilities, then `handler` for everything else. */
async function fakeQmp(t: TestCtx, handler: Handler): Promise<string> {
  const path = join(tempDir(t), 'qmp.sock');
  const server = net.createServer((sock) => {
    const send = (o: unknown) => sock.write(JSON.stringify(o) + '\r\n');
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } });
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') send({ return: {}, id: cmd.id });
        else handler(cmd, send, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  return path;
}

test('QMP: replies are matched by id even out of order, and events are delivered in between', async (t) => {
  const held: Array<() => void> = [];
  const path = await fakeQmp(t, (cmd, send) => {
    if (cmd.execute === 'slow') held.push(() => send({ return: { who: 'slow' }, id: cmd.id }));
    else if (cmd.execute === 'fast') {
      send({ event: 'MIGRATION', data: { status: 'active' }, timestamp: { seconds: 100, microseconds: 500000 } });
      send({ return: { who: 'fast' }, id: cmd.id });
      for (const h of held.splice(0)) h();
    }
  });
  const qmp = await QmpClient.connect({ kind: 'unix', path });
  assert.deepEqual(qmp.version, { major: 7, minor: 2, micro: 0 });
  const events: string[] = [];
  qmp.on((e) => events.push(`${e.event}:${String(e.data?.status)}:${e.timeMs}`));
  const slow = qmp.execute<{ who: string }>('slow');
  const fast = qmp.execute<{ who: string }>('fast');
  assert.equal((await fast).who, 'fast');
  assert.equal((await slow).who, 'slow');
  assert.deepEqual(events, ['MIGRATION:active:100500']);
  qmp.close();
});

test('QMP: an error reply rejects with QEMU\'s class and description', async (t) => {
  const path = await fakeQmp(t, (cmd, send) => send({ error: { class: 'GenericError', desc: 'no such device' }, id: cmd.id }));
  const qmp = await QmpClient.connect({ kind: 'unix', path });
  await assert.rejects(qmp.execute('device_del', { id: 'x' }), (e: unknown) => e instanceof QmpError && e.code === 'FLIMCD_ERR_QMP' && e.qmpClass === 'GenericError' && /device_del failed: no such device/.test(e.message));
  qmp.close();
});

test('QMP: a command without an answer times out with a clear error', async (t) => {
  const path = await fakeQmp(t, () => {});
  const qmp = await QmpClient.connect({ kind: 'unix', path });
  await assert.rejects(qmp.execute('query-status', undefined, { timeoutMs: 100 }), (e: unknown) => e instanceof QmpError && e.code === 'FLIMCD_ERR_QMP_TIMEOUT' && /query-status got no answer within 100 ms/.test(e.message));
  await assert.rejects(qmp.waitEvent('STOP', { timeoutMs: 50 }), /no STOP event within 50 ms/);
  qmp.close();
});

test('QMP: the close after quit is the normal end; any other close rejects what is in flight', async (t) => {
  const path = await fakeQmp(t, (cmd, send, sock) => {
    if (cmd.execute === 'quit') {
      send({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
      sock.destroy(); // QEMU often exits before its answer reaches the client
    } else if (cmd.execute === 'crash') sock.destroy();
  });
  const a = await QmpClient.connect({ kind: 'unix', path });
  await a.quit(2000);
  assert.equal(a.isClosed, true);
  const b = await QmpClient.connect({ kind: 'unix', path });
  const inflight = b.execute('crash');
  const waiting = b.waitEvent('RESUME', { timeoutMs: 5000 });
  await assert.rejects(inflight, (e: unknown) => e instanceof QmpError && e.code === 'FLIMCD_ERR_QMP_CLOSED' && /closed unexpectedly/.test(e.message));
  await assert.rejects(waiting, (e: unknown) => e instanceof QmpError && e.code === 'FLIMCD_ERR_QMP_CLOSED');
  await assert.rejects(b.execute('query-status'), /cannot run query-status/);
});

test('QMP: waitEvent with `since` catches an event that arrived before the wait began', async (t) => {
  const path = await fakeQmp(t, (cmd, send) => {
    send({ event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } });
    send({ return: {}, id: cmd.id });
  });
  const qmp = await QmpClient.connect({ kind: 'unix', path });
  const since = qmp.lastEventSeq;
  await qmp.execute('stop');
  const ev = await qmp.waitEvent('STOP', { timeoutMs: 100, since });
  assert.equal(ev.timeMs, 1000);
  await assert.rejects(qmp.waitEvent('STOP', { timeoutMs: 50 }), /no STOP event/);
  qmp.close();
});

test('QMP: a missing socket is retried until the connect timeout, then fails clearly', async (t) => {
  const path = join(tempDir(t), 'none.sock');
  const t0 = Date.now();
  await assert.rejects(QmpClient.connect({ kind: 'unix', path }, { connectTimeoutMs: 300 }), (e: unknown) => e instanceof QmpError && e.code === 'FLIMCD_ERR_QMP_CONNECT' && /ENOENT/.test(e.message));
  assert.ok(Date.now() - t0 >= 200);
});
