import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needsTsLoader, siblingModule } from '../../src/util/sibling-module.ts';

test('a sibling module keeps the caller\'s extension: .ts from the sources, .js from dist/', () => {
  const fromSrc = siblingModule('file:///repo/src/content/pool.ts', './hash-worker');
  assert.equal(fromSrc.href, 'file:///repo/src/content/hash-worker.ts');
  assert.equal(needsTsLoader(fromSrc), true);
  const fromDist = siblingModule('file:///repo/dist/content/pool.js', '../wire/zstd-worker');
  assert.equal(fromDist.href, 'file:///repo/dist/wire/zstd-worker.js');
  assert.equal(needsTsLoader(fromDist), false);
  // This very test runs from its .ts source.
  assert.equal(siblingModule(import.meta.url, './x').pathname.endsWith('/test/util/x.ts'), true);
});
