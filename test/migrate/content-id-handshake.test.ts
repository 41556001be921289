// Agents say how they name content (HELLO/WELCOME `contentIds`): two of
// different formats refuse each other with FLIMCD_ERR_TARGET_CONTENT_ID,
// whichever side is older (names none: BLAKE3); agents that agree migrate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { SourceAgent } from '../../src/migrate/source-agent.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { realRuntime } from '../../src/runtime.ts';
import { MsgType, WIRE_VERSION } from '../../src/wire/messages.ts';
import { readMessage, writeMessage } from '../../src/wire/handshake.ts';
import { ErrorCode } from '../../src/errors.ts';
import { log } from '../../src/util/log.ts';
import { tempDir } from '../helpers/tmp.ts';

const SIZE = 4 * 1024 * 1024;
const insecure = { mode: 'insecure' } as const;

async function pair(t: import('node:test').TestContext, source: 'sha256' | 'blake3', target: 'sha256' | 'blake3') {
  const dir = tempDir(t);
  const img = join(dir, 'src.img');
  await generateImage(img, SIZE, { seed: 3 });
  const tgt = new TargetAgent({ image: join(dir, 'dst.img'), security: insecure, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, 't.sock') }, log, runtime: realRuntime({ contentIds: target }) });
  const addr = await tgt.listen();
  const src = await SourceAgent.start({ image: img, security: insecure, nbd: { kind: 'unix', path: join(dir, 's.sock') }, to: addr, algorithm: 'hybrid', blockSize: 65536, log, connectTimeoutMs: 5000, runtime: realRuntime({ contentIds: source }) });
  t.after(async () => { await src.close(); await tgt.close(); });
  return { src, tgt, img, dst: join(dir, 'dst.img') };
}

test('a BLAKE3 source and a SHA-256 target refuse each other, naming both formats and the flag', async (t) => {
  const { src } = await pair(t, 'blake3', 'sha256');
  await assert.rejects(src.migrate(), (e: unknown) => (e as { code?: string }).code === ErrorCode.TARGET_CONTENT_ID && /source agent uses blake3 content ids, this agent sha256: run both with the same --content-hash/.test((e as Error).message));
});

test('two BLAKE3 agents migrate and verify (the format is a choice, not a version)', async (t) => {
  const { src, tgt, img, dst } = await pair(t, 'blake3', 'blake3');
  const report = await src.migrate();
  assert.equal(report.verified, true);
  await tgt.result();
  assert.ok(readFileSync(dst).equals(readFileSync(img)));
});

test('a target that names no format (an older flimcd) is refused by a SHA-256 source', async (t) => {
  const server = net.createServer((s) => {
    void readMessage(s, 5000).then(({ message }) => {
      if (message.type !== MsgType.HELLO) return s.destroy();
      assert.equal(message.hello.contentIds, 'sha256', 'the source says its format');
      writeMessage(s, { type: MsgType.WELCOME, welcome: { version: WIRE_VERSION, session: message.hello.session, features: [], processedSeq: 0, resume: 'new' } });
    }).catch(() => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const dir = tempDir(t);
  const img = join(dir, 'src.img');
  await generateImage(img, SIZE, { seed: 4 });
  const src = await SourceAgent.start({ image: img, security: insecure, nbd: { kind: 'unix', path: join(dir, 's.sock') }, to: { kind: 'tcp', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, algorithm: 'hybrid', blockSize: 65536, log, connectTimeoutMs: 5000 });
  t.after(() => src.close());
  await assert.rejects(src.migrate(), (e: unknown) => (e as { code?: string }).code === ErrorCode.TARGET_CONTENT_ID && /target agent uses blake3 content ids \(it names none: an older flimcd\), this agent sha256/.test((e as Error).message));
});

test('a source that names no format (an older flimcd) gets ERROR CONTENT_ID from a SHA-256 target', async (t) => {
  const dir = tempDir(t);
  const tgt = new TargetAgent({ image: join(dir, 'dst.img'), security: insecure, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, 't.sock') }, log });
  const addr = await tgt.listen();
  t.after(() => tgt.close());
  assert.equal(addr.kind, 'tcp');
  const s = net.connect((addr as { port: number }).port, '127.0.0.1');
  t.after(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  writeMessage(s, { type: MsgType.HELLO, hello: { version: WIRE_VERSION, session: 'old-source', imageSize: SIZE, blockSize: 65536, algorithm: 'hybrid', features: [], processedSeq: 0 } });
  const { message } = await readMessage(s, 5000);
  assert.equal(message.type, MsgType.ERROR);
  assert.equal(message.type === MsgType.ERROR && message.code, 'CONTENT_ID');
  assert.match(message.type === MsgType.ERROR ? message.message : '', /source agent uses blake3 content ids \(it names none: an older flimcd\), this agent sha256/);
});
