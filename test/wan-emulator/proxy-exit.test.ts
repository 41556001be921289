// A process that used the WAN proxy exits once it has closed everything, even
// after the proxy aborted sockets it had half-closed. Node 20 leaves a TCP handle
// reset after end() "closing" forever and spins at exit (the fault suite's test
// processes did, at 90 % CPU, until --test-force-exit hid it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawnWithTimeout } from '../helpers/spawn.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/cut-after-half-close.ts', import.meta.url));

test('aborting a socket whose end() is under way leaves no handle that keeps the process from exiting', async () => {
  // A process that does not exit fails the test at the time limit instead of hanging it.
  const r = await spawnWithTimeout(process.execPath, ['--import', 'tsx', FIXTURE], { timeoutMs: 15_000 });
  const out = r.stdout;
  const err = r.stderr;
  const code = r.code ?? r.signal;
  assert.match(out, /closed/, `the fixture ran to its end: ${err}`);
  assert.equal(code, 0);
});
