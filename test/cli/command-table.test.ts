// main.ts loads only the invoked command's module (src/cli/command-table.ts);
// bin/flimcd.js runs the compiled dist/ that `npm ci` builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { COMMAND_TABLE } from '../../src/cli/command-table.ts';
import { registerCommands } from '../../src/cli/commands/index.ts';
import { spawnWithTimeout } from '../helpers/spawn.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/flimcd.js', import.meta.url));

test('the lazy command table names exactly the commands commands/index.ts registers, in the same order', async () => {
  const all = new Command();
  registerCommands(all);
  assert.deepEqual(COMMAND_TABLE.flatMap((e) => e.names), all.commands.map((c) => c.name()));
  for (const e of COMMAND_TABLE) {
    assert.equal(e.summaries.length, e.names.length, e.names.join());
    const one = new Command();
    (await e.load())(one);
    assert.deepEqual(one.commands.map((c) => c.name()), e.names, 'each loader registers its own commands');
  }
});

/** A resolve hook that prints every module the process loads (the --help path must not reach LMDB, zstd, zod or the engines). */
const TRACE_LOADS = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent('export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write("LOADED " + r.url + "\\\\n"); return r; }'));
`)}`;

test('node bin/flimcd.js --help runs the compiled dist/ and loads no command module', async (t) => {
  if (!existsSync(`${ROOT}/dist/cli/main.js`)) {
    if (process.env.CI) assert.fail('dist/ is not built: npm ci runs `npm run build` (prepare)');
    return t.skip('dist/ is not built (npm run build)');
  }
  const r = await spawnWithTimeout(process.execPath, ['--import', TRACE_LOADS, BIN, '--help'], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  for (const name of COMMAND_TABLE.flatMap((e) => e.names)) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
  const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
  assert.ok(loaded.some((u) => u.endsWith('/dist/cli/main.js')), `ran dist/: ${loaded.join('\n')}`);
  assert.ok(!loaded.some((u) => /\/src\/.*\.ts$|tsx/.test(u)), 'no TypeScript, no tsx');
  const heavy = loaded.filter((u) => /node_modules\/(lmdb|zstd-napi|zod|vega|pino|hash-wasm|prom-client)\/|\/dist\/(migrate|wire|sim|replica-index)\/|\/dist\/cli\/commands\//.test(u));
  assert.deepEqual(heavy, [], 'flimcd --help loads none of the heavy modules');
});

test('a command run from dist/ works: status --help and a bad-input exit code', async (t) => {
  if (!existsSync(`${ROOT}/dist/cli/main.js`)) return t.skip('dist/ is not built (npm run build)');
  const help = await spawnWithTimeout(process.execPath, [BIN, 'status', '--help'], { timeoutMs: 30_000 });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--control <addr>/);
  const bad = await spawnWithTimeout(process.execPath, [BIN, 'export', '--image', '/nonexistent/vm.img'], { timeoutMs: 30_000 });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^flimcd: .*\/nonexistent\/vm\.img/m);
});
