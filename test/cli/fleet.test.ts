// The datacenter-wide locator as an operator runs it: `index add --cluster`
// on a sibling host, its `flimcd replica-server`, and a `flimcd target
// --cluster` on another host that fetches the sibling's blocks over the LAN,
// with a pre-shared key and with certificates from `flimcd certs`.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFileSync, openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { generateImage } from '../../src/workload/image-gen.ts';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { freePort } from '../helpers/net.ts';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { Prng } from '../../src/workload/prng.ts';

test('bad --cluster and --replica-address input is refused with exit 2 and names the flag', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'a.img');
  await generateImage(img, 1 << 20, { seed: 1 });
  const noCluster = await flimcd(['target', '--insecure', '--image', join(dir, 'dst.img'), '--replica-address', 'tcp:10.0.0.1:7100']);
  assert.equal(noCluster.code, 2);
  assert.match(noCluster.stderr, /--replica-address needs --cluster/);
  const badUrl = await flimcd(['target', '--insecure', '--image', join(dir, 'dst.img'), '--cluster', '127.0.0.1:7000']);
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /--cluster: "127\.0\.0\.1:7000" is not redis:\/\/HOST:PORT/);
  const wildcard = await flimcd(['index', 'add', '--index', join(dir, 'ix'), img, '--cluster', 'redis://127.0.0.1:7000', '--replica-address', 'tcp:0.0.0.0:7100']);
  assert.equal(wildcard.code, 2);
  assert.match(wildcard.stderr, /--replica-address/);
  const noAddr = await flimcd(['index', 'add', '--index', join(dir, 'ix'), img, '--cluster', 'redis://127.0.0.1:7000']);
  assert.equal(noAddr.code, 2);
  assert.match(noAddr.stderr, /needs --replica-address/);
});

/**
 * Host B's replica server and host A's target use the target's credentials, the source its own,
 * all from `flimcd certs`: one PSK file, or a CA with a source and a target certificate.
 */
async function credentials(dir: string, mode: 'psk' | 'cert'): Promise<{ source: string[]; target: string[] }> {
  if (mode === 'psk') {
    const psk = join(dir, 'link.psk');
    assert.equal((await flimcd(['certs', '--psk', psk])).code, 0);
    return { source: ['--psk-file', psk], target: ['--psk-file', psk] };
  }
  const pki = join(dir, 'pki');
  assert.equal((await flimcd(['certs', '--out', pki])).code, 0);
  const as = (role: string) => ['--tls-ca', join(pki, 'ca.crt'), '--tls-cert', join(pki, `${role}.crt`), '--tls-key', join(pki, `${role}.key`)];
  return { source: as('source'), target: as('target') };
}

for (const mode of ['psk', 'cert'] as const) {
  test(`a target with --cluster builds the blocks a sibling host holds from that host's replica server (${mode === 'psk' ? 'pre-shared key' : 'certificates'})`, (t) => lanFetchThroughCli(t, mode));
}

async function lanFetchThroughCli(t: TestContext, mode: 'psk' | 'cert'): Promise<void> {
  const rc = await startRedisCluster(t);
  if (!rc) return;
  const dir = tempDir(t);
  const base = join(dir, 'base.img');
  await generateImage(base, 16 * 1024 * 1024, { seed: 31 });
  const creds = await credentials(dir, mode);
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });
  // Host B: registers the base image, publishes it, serves it.
  const ixB = join(dir, 'ix-b');
  const port = await freePort();
  const add = await flimcd(['index', 'add', '--index', ixB, base, '--cluster', rc.urls.join(','), '--replica-address', `tcp:127.0.0.1:${port}`, '--json']);
  assert.equal(add.code, 0, add.stderr);
  const [added, published] = add.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; newIds: number; entries: number });
  assert.equal(published!.event, 'published');
  assert.equal(published!.entries, added!.newIds, 'every id the index holds for the image is published');
  const server = await flimcdBackground(['replica-server', '--index', ixB, '--listen', `tcp:127.0.0.1:${port}`, ...creds.target, '--json'], /"event":"listening"/);
  kids.push(server.child);
  // The VM: the base with 16 blocks rewritten.
  const vm = join(dir, 'vm.img');
  copyFileSync(base, vm);
  const fd = openSync(vm, 'r+');
  const rng = new Prng(32);
  const blk = Buffer.allocUnsafe(65536);
  for (let i = 0; i < 16; i++) {
    rng.fill(blk);
    writeSync(fd, blk, 0, blk.length, ((i * 13) % 256) * 65536);
  }
  closeSync(fd);
  // Host A: a target agent that knows host B only through the locator.
  const target = await flimcdBackground(['target', ...creds.target, '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--cluster', rc.urls[0]!, '--exit-when-done', '--json'], /"event":"listening"/);
  kids.push(target.child);
  const addr = JSON.parse(target.line).listen as string;
  const source = await flimcd(['source', ...creds.source, '--image', vm, '--to', addr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--json'], { timeoutMs: 60000 });
  assert.equal(source.code, 0, source.stderr.slice(-2000));
  const report = JSON.parse(source.stdout.split('\n').find((l) => l.includes('"event":"report"'))!);
  assert.equal(report.verified, true);
  assert.ok(report.from_lan.blocks > 100, `from LAN ${report.from_lan.blocks}`);
  assert.ok(report.blocks.sent_data <= 16, `data blocks ${report.blocks.sent_data}`);
  const tgt = await target.exited;
  assert.equal(tgt.code, 0, tgt.stderr.slice(-2000));
  assert.ok(readFileSync(join(dir, 'dst.img')).equals(readFileSync(vm)), 'target byte-exact');
  server.child.kill('SIGTERM');
  assert.equal((await server.exited).code, 143);
}
