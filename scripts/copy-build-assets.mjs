// The shipped build's second step: plain JavaScript modules under src/ (worker entry points
// loaded by URL, which tsc neither compiles nor copies) go to the same place under dist/.
import { cpSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const src = new URL('../src/', import.meta.url).pathname;
const dist = new URL('../dist/', import.meta.url).pathname;

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.name.endsWith('.mjs')) yield p;
  }
}

for (const file of walk(src)) cpSync(file, join(dist, relative(src, file)));
