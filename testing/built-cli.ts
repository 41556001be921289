/**
 * The compiled flimcd command (bin/flimcd.js runs dist/) for benchmarks and resource tests, which
 * measure what a deployment runs rather than tsx compiling on the fly. A dist/ older than the
 * sources would measure old code without a word, so it is refused with the fix named.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** The path of bin/flimcd.js, after checking that dist/ was built from the sources as they are now. */
export function builtFlimcd(): string {
  const main = join(ROOT, 'dist/cli/main.js');
  let built: number;
  try {
    built = statSync(main).mtimeMs;
  } catch {
    throw new Error('dist/ is not built: run `npm run build` first (npm ci does it)');
  }
  if (newestMtimeMs(join(ROOT, 'src')) > built) throw new Error('dist/ is older than src/: run `npm run build` so that the compiled agents run the current code');
  return join(ROOT, 'bin/flimcd.js');
}
