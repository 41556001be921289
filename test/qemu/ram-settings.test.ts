// vm migrate sets QEMU's migration capabilities and max-bandwidth, and must set
// them back: a later run must not crawl at an old run's limit (issue 21).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requirePeers } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startBareQemu } from '../helpers/bare-qemu.ts';
import { ChangedMigrationSettings } from '../../src/qemu/ram-settings.ts';
import type { QmpClient } from '../../src/qemu/qmp.ts';

async function settings(qmp: QmpClient) {
  const caps = await qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
  const params = await qmp.execute<Record<string, unknown>>('query-migrate-parameters');
  const cap = (n: string) => caps.find((c) => c.capability === n)?.state;
  return { pause: cap('pause-before-switchover'), events: cap('events'), bandwidth: params['max-bandwidth'] };
}

test('migration settings: applied, then set back to what QEMU had (this QEMU\'s default max-bandwidth is 128 MiB/s)', { timeout: 30_000 }, async (t) => {
  if (!requirePeers(t, 'qemu-system-x86_64')) return;
  const q = await startBareQemu(t, tempDir(t), 'src', ['-M', 'none']);
  const before = await settings(q.qmp);
  assert.deepEqual(before, { pause: false, events: false, bandwidth: 128 << 20 });
  const changed = await ChangedMigrationSettings.apply(q.qmp, { capabilities: { 'pause-before-switchover': true, events: true }, parameters: { 'max-bandwidth': 1 << 20 } });
  assert.deepEqual(await settings(q.qmp), { pause: true, events: true, bandwidth: 1 << 20 });
  await changed.restore();
  assert.deepEqual(await settings(q.qmp), before);
  // Only what was changed is remembered: a setting already as wanted stays as it was.
  await q.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const again = await ChangedMigrationSettings.apply(q.qmp, { capabilities: { events: true, 'pause-before-switchover': true } });
  assert.deepEqual(again.before, { capabilities: { 'pause-before-switchover': false }, parameters: {} });
  await again.restore();
  assert.deepEqual(await settings(q.qmp), { ...before, events: true });
});
