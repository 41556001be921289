// A process that used the WAN proxy exits once it has closed everything, even
// after the proxy aborted sockets it had half-closed. Node 20 leaves a TCP handle
// reset after end() "closing" forever and spins at exit (the fault suite's test
// processes did, at 90 % CPU, until --test-force-exit hid it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/cut-after-half-close.ts', import.meta.url));

test('aborting a socket whose end() is under way leaves no handle that keeps the process from exiting', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('still running 15 s after start');
    }, 15_000);
    child.on('exit', (c, s) => {
      clearTimeout(timer);
      resolve(c ?? String(s));
    });
  });
  assert.match(out, /closed/, `the fixture ran to its end: ${err}`);
  assert.equal(code, 0);
});
