// Before migrate-continue, vm migrate checks that the target QEMU's disk is the
// live target agent's export (issue 21: a retry against a target QEMU still
// attached to the aborted agent's socket gave the guest read errors after the
// switch-over, and vm migrate said "disk verified", exit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { truncateSync, writeFileSync } from 'node:fs';
import { requirePeers } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startBareQemu } from '../helpers/bare-qemu.ts';
import { checkTargetAttached, nbdFileMatches } from '../../src/qemu/target-attach.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { FileDisk } from '../../src/block/file.ts';
import { formatAddress } from '../../src/util/address.ts';
import { nbdBlockdev } from '../../src/qemu/process.ts';
import { ErrorCode } from '../../src/errors.ts';

test('nbdFileMatches reads QEMU\'s NBD filenames (unix with and without an export name, tcp)', () => {
  assert.ok(nbdFileMatches('nbd+unix://?socket=/run/a.sock', 'unix:/run/a.sock'));
  assert.ok(nbdFileMatches('nbd+unix:///vm?socket=/run/a.sock', 'unix:/run/a.sock'));
  assert.ok(!nbdFileMatches('nbd+unix://?socket=/run/a.sock.old', 'unix:/run/a.sock'));
  assert.ok(!nbdFileMatches('nbd+unix://?socket=/run/b.sock', 'unix:/run/a.sock'));
  assert.ok(nbdFileMatches('nbd://10.0.0.5:10809/vm', 'tcp:10.0.0.5:10809'));
  assert.ok(!nbdFileMatches('nbd://10.0.0.5:10810/vm', 'tcp:10.0.0.5:10809'));
});

test('the target QEMU must be attached to the target agent\'s export, and the agent must see it connected', { timeout: 30_000 }, async (t) => {
  if (!requirePeers(t, 'qemu-system-x86_64')) return;
  const dir = tempDir(t);
  const img = join(dir, 'd.img');
  writeFileSync(img, '');
  truncateSync(img, 4 << 20);
  const disk = await FileDisk.open(img, {});
  t.after(() => disk.close());
  const serve = async (name: string) => {
    const server = new NbdServer({ exports: [{ name: '', description: name, disk }] });
    const address = await server.listen({ kind: 'unix', path: join(dir, `${name}.sock`) });
    t.after(() => server.close());
    return { server, address };
  };
  const live = await serve('live');
  const old = await serve('old');
  // The target QEMU of a retry, still attached to the earlier (aborted) agent's export.
  const q = await startBareQemu(t, dir, 'dst', ['-M', 'none', '-blockdev', nbdBlockdev(old.address, 'd0')]);
  const refused = await checkTargetAttached(q.qmp, { nbd: formatAddress(live.address), vmConnections: live.server.connectionCount }).then(() => undefined, (e: unknown) => e as { code: string; message: string });
  assert.equal(refused?.code, ErrorCode.VM_TARGET_DETACHED);
  assert.match(refused.message, /not on the target agent's export unix:.*live\.sock \(it has nbd\+unix:\/\/\?socket=.*old\.sock/);
  // The same socket path, but the agent sees no client: QEMU's connection is to an earlier agent there.
  const stale = await checkTargetAttached(q.qmp, { nbd: formatAddress(old.address), vmConnections: 0 }).then(() => undefined, (e: unknown) => e as Error);
  assert.match(String(stale?.message), /has no client on its export/);
  const ok = await checkTargetAttached(q.qmp, { nbd: formatAddress(old.address), vmConnections: old.server.connectionCount });
  assert.deepEqual(ok, { node: 'd0', export: formatAddress(old.address) });
});
