// The agents' resume options as an operator meets them: --link-timeout,
// --fetch-timeout and --state-dir, and exit code 4 when the link stays down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { generateImage } from '../../src/workload/image-gen.ts';

test('source and target --help document the resume options and exit code 4', async () => {
  const s = await flimcd(['source', '--help']);
  assert.equal(s.code, 0);
  for (const o of ['--link-timeout', '--state-dir']) assert.ok(s.stdout.includes(o), o);
  assert.match(s.stdout, /4 link down longer than --link-timeout/);
  const t = await flimcd(['target', '--help']);
  assert.equal(t.code, 0);
  for (const o of ['--fetch-timeout', '--state-dir']) assert.ok(t.stdout.includes(o), o);
});

test('a bad --fetch-timeout is a usage error naming the option', async (t) => {
  const dir = tempDir(t);
  const r = await flimcd(['target', '--insecure', '--image', join(dir, 'x.img'), '--listen', 'tcp:127.0.0.1:0', '--fetch-timeout', 'soon']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--fetch-timeout: cannot read "soon"/);
});

test('an unreachable target past --link-timeout: exit code 4, state kept for a restart', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 1024 * 1024, { seed: 1 });
  const t0 = Date.now();
  const r = await flimcd(['source', '--insecure', '--image', img, '--to', 'tcp:127.0.0.1:1', '--nbd', `unix:${join(dir, 's.sock')}`, '--link-timeout', '1s', '--state-dir', join(dir, 'state')], { env: { FLIMCD_LOG_LEVEL: 'info' } });
  assert.equal(r.code, 4, r.stderr.slice(-1000));
  assert.match(r.stderr, /cannot reach the target agent at tcp:127\.0\.0\.1:1/);
  assert.match(r.stderr, /target agent unreachable; retrying/, 'a log line per attempt');
  assert.ok(Date.now() - t0 < 15_000);
  assert.ok(existsSync(join(dir, 'state', 'source.json')), '--state-dir holds the session');
});
