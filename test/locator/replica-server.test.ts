// The replica server with certificates from `flimcd certs`: a sibling target
// agent (target certificate) fetches blocks from it; a source certificate is
// refused, with the reason logged. Real TLS on loopback, no Redis needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { makeCertificates } from '../../src/cli/commands/certs.ts';
import { ReplicaServer } from '../../src/locator/replica-server.ts';
import { ReplicaClient } from '../../src/locator/replica-client.ts';
import { ReplicaIndex } from '../../src/replica-index/replica-index.ts';
import { indexImage } from '../../src/replica-index/image-scan.ts';
import { contentId } from '../../src/content/content-id.ts';
import { formatAddress } from '../../src/util/address.ts';
import { realClock } from '../../src/util/clock.ts';
import type { LinkSecurity } from '../../src/wire/secure-link.ts';
import { Prng } from '../../src/workload/prng.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';

const BS = 16384;

function capturingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: pino({ level: 'info' }, stream), lines };
}

function certs(dir: string, role: 'source' | 'target'): LinkSecurity {
  return { mode: 'cert', ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, `${role}.crt`)), key: readFileSync(join(dir, `${role}.key`)) };
}

test('certificates from `flimcd certs`: a sibling target fetches blocks from a replica server; a source certificate is refused as a wrong role', async (t) => {
  const dir = tempDir(t);
  const pki = join(dir, 'pki');
  makeCertificates(pki, 30, false);
  const image = Buffer.allocUnsafe(8 * BS);
  new Prng(7).fill(image);
  const path = join(dir, 'template.img');
  writeFileSync(path, image);
  const index = ReplicaIndex.open(join(dir, 'index'));
  t.after(() => index.close());
  await indexImage(index, path, BS);
  const no = index.image(path)!.no;

  const serverLog = capturingLog();
  const server = new ReplicaServer({ index, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, security: certs(pki, 'target'), log: serverLog.log });
  t.after(() => server.close());
  const address = formatAddress(await server.listen());
  const request = (block: number) => ({ blockSize: BS, image: no, block, id: contentId(image.subarray(block * BS, (block + 1) * BS)) });

  // A sibling target agent, with the target's own certificate (as `flimcd target --cluster` uses it).
  const clientLog = capturingLog();
  const sibling = new ReplicaClient({ security: certs(pki, 'target'), clock: realClock, log: clientLog.log, requestTimeoutMs: 5000 });
  t.after(() => sibling.close());
  for (const block of [0, 3, 7]) {
    const got = await sibling.fetch(address, request(block));
    assert.ok(got, `block ${block} fetched; client log: ${JSON.stringify(clientLog.lines)}; server log: ${JSON.stringify(serverLog.lines)}`);
    assert.ok(got.equals(image.subarray(block * BS, (block + 1) * BS)), `block ${block} byte-exact`);
  }
  assert.equal(server.stats.served, 3);

  // A source's certificate chains to the same CA, but the replica server serves target agents only.
  const source = new ReplicaClient({ security: certs(pki, 'source'), clock: realClock, log: capturingLog().log, requestTimeoutMs: 5000 });
  t.after(() => source.close());
  assert.equal(await source.fetch(address, request(1)), undefined);
  await until(() => serverLog.lines.some((l) => /refused/.test(String(l.msg))), 10_000, 'the refusal logged');
  const refusal = serverLog.lines.find((l) => /refused/.test(String(l.msg)))!;
  assert.match(String(refusal.reason), /wrong role: it presents a source certificate \(flimcd-source\), this listener accepts only flimcd-target/);
  assert.equal(server.stats.served, 3, 'nothing served to the source');
});
