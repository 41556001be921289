#!/usr/bin/env node
// The flimcd command: the compiled JavaScript in dist/, which `npm ci` builds
// (package.json "prepare": tsc -p tsconfig.build.json). Starting from JavaScript
// takes a fraction of a second; compiling TypeScript on the fly took seconds.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('flimcd: dist/ is not built: run `npm run build` (npm ci does it), or `npm run flimcd -- ARGS` to run the sources\n');
  process.exit(1);
}
await import(main.href);
