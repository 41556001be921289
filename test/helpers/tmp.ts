import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestCtx } from './test-context.ts';

/** A fresh temp directory removed when the test ends. */
export function tempDir(t: TestCtx, prefix = 'flimcd-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
