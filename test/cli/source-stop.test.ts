// What a SIGINT or SIGTERM means to the source agent in each phase: before the
// cut-over the first ends the migration and the next exits; from the cut-over on
// the first finishes post-copy, a second within the window asks for
// confirmation, a third within the window exits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIRM_WINDOW_MS, isAfterCutover, SourceStopPolicy } from '../../src/cli/source-stop.ts';

test('before the cut-over: the first signal aborts the migration, the next one exits', () => {
  for (const phase of ['starting', 'precopy', 'failed']) {
    const p = new SourceStopPolicy();
    assert.equal(p.onSignal(phase, 0), 'abort', phase);
    assert.equal(p.onSignal('failed', 60_000), 'exit', phase);
  }
});

test('from the cut-over on: finish, then confirm, then exit, each within the window of the one before', () => {
  for (const phase of ['cutover', 'postcopy', 'verify', 'done']) {
    const p = new SourceStopPolicy();
    assert.equal(p.onSignal(phase, 0), 'finish', phase);
    assert.equal(p.onSignal(phase, CONFIRM_WINDOW_MS - 1), 'confirm', phase);
    assert.equal(p.onSignal(phase, 2 * CONFIRM_WINDOW_MS - 2), 'exit', phase);
  }
});

test('after the cut-over a signal later than the window starts over: it never exits without two more', () => {
  const p = new SourceStopPolicy(1000);
  assert.equal(p.onSignal('postcopy', 0), 'finish');
  assert.equal(p.onSignal('postcopy', 1001), 'finish');
  assert.equal(p.onSignal('postcopy', 1500), 'confirm');
  assert.equal(p.onSignal('postcopy', 2600), 'finish', 'the third came too late: it counts as a first');
  assert.equal(p.onSignal('postcopy', 2700), 'confirm');
  assert.equal(p.onSignal('postcopy', 2800), 'exit');
});

test('the phases in which the VM may run at the target', () => {
  assert.deepEqual(['starting', 'precopy', 'cutover', 'postcopy', 'verify', 'done', 'failed'].filter(isAfterCutover), ['cutover', 'postcopy', 'verify', 'done']);
});
