// `flimcd demo --quiet` prints the report and nothing else; --verbose with it is bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flimcd } from '../helpers/cli.ts';

test('demo --quiet: only the report, no commentary and no log lines', { timeout: 90_000 }, async () => {
  const env = { ...process.env };
  delete env.FLIMCD_LOG_LEVEL;
  const r = await flimcd(['demo', '--quiet', '--insecure', '--size', '16MiB', '--bandwidth', '100Mbit', '--rtt', '2ms', '--workload', 'light'], { timeoutMs: 80_000, env });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /flimcd demo:|^\s+\[/m, 'no header and no phase lines');
  assert.match(r.stdout, /verified/);
  assert.match(r.stdout, /downtime/);
  // The only warning a quiet demo may print is the one --insecure asks for.
  assert.deepEqual(r.stderr.split('\n').filter((l) => l.trim() && !/plaintext/.test(l)), []);
});

test('demo --quiet --verbose is bad input', async () => {
  const r = await flimcd(['demo', '--quiet', '--verbose']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--quiet and --verbose contradict each other/);
});
