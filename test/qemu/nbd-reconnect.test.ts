// The -blockdev line flimcd documents and its test guests use (nbdBlockdev)
// carries reconnect-delay: a brief restart of the source agent under a running
// QEMU client gives it a stall, never an I/O error (issue 21: a restart without
// it gave the guest 361 I/O errors). QEMU's NBD client here is qemu-io with the
// very same options a VM's -blockdev gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { requirePeers, PEER_PATH } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { SourceAgent } from '../../src/migrate/source-agent.ts';
import { nbdBlockdev } from '../../src/qemu/process.ts';
import { log } from '../../src/util/log.ts';
import type { Address } from '../../src/util/address.ts';

test('a source-agent restart under a QEMU NBD client with the documented -blockdev options causes no I/O error', { timeout: 60_000 }, async (t) => {
  if (!requirePeers(t, 'qemu-io')) return;
  const dir = tempDir(t);
  const image = join(dir, 'vm.img');
  await generateImage(image, 8 << 20, { seed: 21 });
  const nbd: Address = { kind: 'unix', path: join(dir, 'vm.sock') };
  const start = () =>
    SourceAgent.start({ image, nbd, to: { kind: 'unix', path: join(dir, 'nobody.sock') }, security: { mode: 'insecure' }, algorithm: 'flimcd', blockSize: 65536, log: log.child({ test: 'nbd-reconnect' }) });
  let agent = await start();
  t.after(() => agent.close());

  // Write, wait while the agent restarts, then read back and write again through the same connection.
  const cmds = ['write -P 0x5a 0 64k', 'sleep 4000', 'read -P 0x5a 0 64k', 'write -P 0x6b 1M 64k', 'read -P 0x6b 1M 64k', 'flush'];
  const qemuIo = spawn('qemu-io', ['--image-opts', nbdBlockdev(nbd, 'd0'), ...cmds.flatMap((c) => ['-c', c])], { env: { ...process.env, PATH: PEER_PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  qemuIo.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  qemuIo.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => qemuIo.once('exit', (code) => r(code)));
  t.after(() => qemuIo.kill('SIGKILL'));

  await until(() => agent.nbd.connectionCount > 0, 20_000, 'qemu-io never connected');
  await new Promise((r) => setTimeout(r, 1000));
  // The restart: the export goes away (the client's connection drops), then comes back on the same socket.
  await agent.close();
  await new Promise((r) => setTimeout(r, 500));
  agent = await start();
  await until(() => agent.nbd.connectionCount > 0, 20_000, 'qemu-io did not reconnect to the restarted agent');

  const code = await exited;
  assert.doesNotMatch(out, /error|failed|Pattern verification/i, out);
  assert.equal(code, 0, out);
  assert.equal(out.match(/read 65536\/65536 bytes/g)?.length, 2, out);
});
