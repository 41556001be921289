// Benchmark scripts' options: strict, human units, exit 2 naming the option on bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchArgs } from '../../bench/bench-args.ts';

const NBD_BENCH = fileURLToPath(new URL('../../bench/nbd.ts', import.meta.url));

test('values in human units parse; absent ones take their defaults', () => {
  const a = benchArgs('t', 'usage: t', { size: { type: 'string' }, bw: { type: 'string' }, rtt: { type: 'string' }, runs: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean', default: false } },
    ['--size', '64MiB', '--bw', '100Mbit', '--rtt', '2s', '--only', 'b, a']);
  assert.equal(a.size(a.values.size, 1, '--size'), 64 * 1024 * 1024);
  assert.equal(a.rate(a.values.bw, 1, '--bw'), 100e6);
  assert.equal(a.duration(a.values.rtt, 1, '--rtt'), 2000);
  assert.equal(a.int(a.values.runs, 3, '--runs'), 3);
  assert.deepEqual(a.list(a.values.only, ['a', 'b', 'c'] as const, '--only'), ['b', 'a']);
  assert.equal(a.values.json, false);
});

test('a bench script given a bad value, an unknown option or an unknown list item exits 2 naming it; --help exits 0', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', NBD_BENCH, ...args], { encoding: 'utf8' });
  const bad = run('--runs', 'x');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^bench\/nbd: --runs must be an integer >= 1, got "x"\nusage:/);
  const unknown = run('--bogus');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--bogus'/);
  const item = run('--only', 'seq_read,nope');
  assert.equal(item.status, 2);
  assert.match(item.stderr, /--only: unknown "nope" \(known: seq_read, seq_write, rand4k_read\)/);
  const size = run('--size', 'lots');
  assert.equal(size.status, 2);
  assert.match(size.stderr, /--size/);
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: tsx bench\/nbd\.ts/);
});
