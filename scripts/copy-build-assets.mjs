// The shipped build's second step: plain JavaScript modules under src/ (worker entry points
// loaded by URL, which tsc neither compiles nor copies) go to the same place under dist/.
import { cpSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.name.endsWith('.mjs')) yield p;
  }
}

for (const file of walk(src)) cpSync(file, join(dist, relative(src, file)));
