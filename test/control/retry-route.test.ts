// POST /retry: the source agent starts a new migration after one ended with the
// VM's disk here (phase idle); an idle agent has nothing to abort or cut over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ControlServer } from '../../src/control/server.ts';
import { controlRequest, ControlResponseError } from '../../src/control/client.ts';
import type { AgentControl } from '../../src/control/types.ts';
import { ErrorCode, FlimcdError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';
import type { TestCtx } from '../helpers/test-context.ts';

async function serve(t: TestCtx, control: AgentControl) {
  const server = new ControlServer({ address: { kind: 'unix', path: join(tempDir(t), 'c.ctl') }, control });
  const addr = await server.listen();
  t.after(() => server.close());
  return (method: 'GET' | 'POST', path: string) => controlRequest<Record<string, unknown>>(addr, method, path, method === 'POST' ? {} : undefined).then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e: e as ControlResponseError }));
}

test('POST /retry: accepted when the agent starts over, 409 with its reason when it refuses, 409 on an agent without retry', async (t) => {
  let phase = 'idle';
  let retries = 0;
  const req = await serve(t, {
    role: 'source',
    status: () => ({ phase }),
    abort: () => {},
    cutover: () => {},
    retry: () => {
      if (phase !== 'idle') throw new FlimcdError(`a migration is running (phase ${phase}); abort it first`, ErrorCode.RETRY_REFUSED);
      retries++;
      phase = 'starting';
    },
  });
  // Idle: nothing to abort, nothing to cut over.
  const abort = await req('POST', '/abort');
  assert.ok(!abort.ok && abort.e.status === 409 && abort.e.code === ErrorCode.ABORT_REFUSED);
  assert.match(abort.e.message, /nothing to abort: no migration is running/);
  const cut = await req('POST', '/cutover');
  assert.ok(!cut.ok && cut.e.status === 409);
  assert.match(cut.e.message, /no migration is running .*POST \/retry/);
  const first = await req('POST', '/retry');
  assert.ok(first.ok);
  assert.deepEqual(first.v, { accepted: true });
  const again = await req('POST', '/retry');
  assert.ok(!again.ok && again.e.status === 409 && again.e.code === ErrorCode.RETRY_REFUSED);
  assert.match(again.e.message, /cannot start a new migration: a migration is running \(phase starting\)/);
  assert.equal(retries, 1);

  const target = await serve(t, { role: 'target', status: () => ({ phase: 'waiting' }), abort: () => {} });
  const refused = await target('POST', '/retry');
  assert.ok(!refused.ok && refused.e.status === 409);
  assert.match(refused.e.message, /the target agent cannot start a migration; ask the source agent/);
});
