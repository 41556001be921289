#!/usr/bin/env node
// Builds the optional native sparse helper (native/sparse) with node-gyp.
// Runs as the root package's postinstall. It never fails the install: without
// the addon flimcd falls back to pure JS (slower zeroing, no hole map).
// Prints one line; the full build log goes to native/sparse/build/build.log.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native', 'sparse');
const out = join(dir, 'build', 'Release', 'sparse.node');

function done(msg) {
  console.log(`flimcd: ${msg}`);
  process.exit(0);
}

if (process.env.FLIMCD_SKIP_NATIVE) done('native sparse helper skipped (FLIMCD_SKIP_NATIVE set)');
if (process.platform !== 'linux') done(`native sparse helper skipped (needs Linux, this is ${process.platform}); using pure JS`);

// Candidates in order: npm's own pointer to its bundled node-gyp, node-gyp on PATH, npm's install dir.
function gypCommands() {
  const cmds = [];
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) cmds.push([process.execPath, [fromNpm]]);
  cmds.push(['node-gyp', []]);
  const prefix = resolve(dirname(process.execPath), '..');
  for (const p of [
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ]) {
    if (existsSync(p)) cmds.push([process.execPath, [p]]);
  }
  cmds.push(['npm', ['exec', '--yes=false', '--', 'node-gyp']]);
  return cmds;
}

// Without a nodedir node-gyp downloads headers; prefer the ones installed next to this node.
const args = ['rebuild'];
if (!process.env.npm_config_nodedir) {
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
}

const log = [];
for (const [cmd, pre] of gypCommands()) {
  const r = spawnSync(cmd, [...pre, ...args], { cwd: dir, encoding: 'utf8', timeout: 180_000, env: process.env });
  log.push(`$ ${cmd} ${[...pre, ...args].join(' ')}\n${r.error ? String(r.error) : ''}${r.stdout ?? ''}${r.stderr ?? ''}\nexit ${r.status}\n`);
  if (r.error && r.error.code === 'ENOENT') continue;
  if (r.status === 0 && existsSync(out)) {
    writeLog();
    done(`native sparse helper built (${out.slice(root.length + 1)})`);
  }
  // A real compile failure will not improve with another node-gyp; stop here.
  if (r.status !== null && !r.error) break;
}
const logPath = writeLog();
done(`warning: native sparse helper NOT built; falling back to pure JS (see ${logPath ?? 'build output'})`);

function writeLog() {
  try {
    mkdirSync(join(dir, 'build'), { recursive: true });
    const p = join(dir, 'build', 'build.log');
    writeFileSync(p, log.join('\n'));
    return p.slice(root.length + 1);
  } catch {
    return undefined;
  }
}
