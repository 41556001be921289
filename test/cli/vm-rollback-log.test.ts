// A vm migrate rollback whose target agent has already stopped says so quietly:
// no "abort the target agent failed … ENOENT" warning (issue 21), since the
// target exits on purpose when the source ends the migration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { flimcdSpawn } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { fakeQemuInState } from '../helpers/fake-qmp.ts';


test('vm migrate rollback: a target agent that has already exited is no warning', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  await fakeQemuInState(t, join(dir, 'src.qmp'), 'running');
  await fakeQemuInState(t, join(dir, 'dst.qmp'), 'inmigrate');
  // The source agent stays in pre-copy round 0; the target agent's control socket is gone.
  const agent = http.createServer((req, res) => {
    req.resume();
    res.writeHead(req.method === 'POST' ? 202 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.method === 'POST' ? { accepted: true, phase: 'precopy' } : { role: 'source', phase: 'precopy', round: 0, remainingBlocks: 1000, blockSize: 65536 }));
  });
  await new Promise<void>((r) => agent.listen(join(dir, 's.ctl'), r));
  t.after(() => agent.close());
  const p = flimcdSpawn(['vm', 'migrate', '--source-qmp', `unix:${join(dir, 'src.qmp')}`, '--target-qmp', `unix:${join(dir, 'dst.qmp')}`, '--source-control', `unix:${join(dir, 's.ctl')}`, '--target-control', `unix:${join(dir, 't.ctl')}`, '--incoming', 'tcp:127.0.0.1:4444', '--json'], { env: { ...process.env, FLIMCD_LOG_LEVEL: 'info' } });
  t.after(() => p.child.kill('SIGKILL'));
  let out = '';
  p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => out.includes('"stage":"precopy"'), 30_000, 'vm migrate never reached pre-copy');
  p.child.kill('SIGINT');
  const r = await p.exited;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /rollback: the target agent has already stopped/);
  assert.doesNotMatch(r.stderr, /abort the target agent failed|ENOENT/);
  assert.match(r.stderr, /VM migration rolled back: the VM runs at the source/);
});
