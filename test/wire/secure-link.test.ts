// The link seam: TLS 1.3 with mutual authentication (certificates or PSK),
// refusals logged while the listener keeps accepting, no silent downgrade.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { connectLink, createLinkServer, ephemeralPsk, type LinkSecurity } from '../../src/wire/secure-link.ts';
import { makeCertificates } from '../../src/cli/commands/certs.ts';
import { AuthError } from '../../src/errors.ts';
import type { Address } from '../../src/util/address.ts';
import { tempDir } from '../helpers/tmp.ts';

function capturingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: pino({ level: 'info' }, stream), lines };
}

function certs(dir: string, role: 'source' | 'target', as: 'source' | 'target' = role): LinkSecurity {
  return { mode: 'cert', ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, `${as}.crt`)), key: readFileSync(join(dir, `${as}.key`)) };
}

/** A link server that echoes one line back, so a test sees the link carry data both ways. */
async function echoServer(security: LinkSecurity) {
  const { log, lines } = capturingLog();
  const server = createLinkServer(security, (s) => s.once('data', (d) => s.end(d)), log);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr: Address = { kind: 'tcp', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
  return { server, addr, lines, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function roundTrip(addr: Address, security: LinkSecurity): Promise<string> {
  const s = await connectLink(addr, security);
  s.write('ping');
  let got = '';
  for await (const d of s) got += String(d);
  return got;
}

/** Two unrelated CAs (each with source and target certificates) and a target serving with the first. */
async function twoCasAndATarget(t: TestContext) {
  const dir = tempDir(t);
  const pki = join(dir, 'pki');
  const other = join(dir, 'other');
  makeCertificates(pki, 30, false);
  makeCertificates(other, 30, false);
  const srv = await echoServer(certs(pki, 'target'));
  t.after(srv.close);
  return { dir, pki, other, srv };
}

/** Waits until the server has logged `n` refusals (logging follows the client's failure asynchronously). */
async function refusals(lines: Array<Record<string, unknown>>, n: number) {
  for (let i = 0; i < 100 && lines.filter((l) => /refused/.test(String(l.msg))).length < n; i++) await new Promise((r) => setTimeout(r, 20));
  return lines.filter((l) => /refused/.test(String(l.msg)));
}

test('certificates: mutual TLS 1.3 link carries data; wrong CA, wrong role and plaintext peers are refused and logged, the listener keeps accepting', async (t) => {
  const { pki, other, srv } = await twoCasAndATarget(t);

  const ok = await connectLink(srv.addr, certs(pki, 'source'));
  assert.equal((ok as tls.TLSSocket).getProtocol(), 'TLSv1.3');
  assert.equal((ok as tls.TLSSocket).getPeerCertificate().subject.CN, 'flimcd-target');
  ok.destroy();

  // A source certificate from another CA.
  await assert.rejects(connectLink(srv.addr, certs(other, 'source')), (e: unknown) => e instanceof AuthError && e.code === 'FLIMCD_ERR_AUTH');
  // The right CA, but the target's own certificate presented as a source (refused by its name, flimcd-target).
  await assert.rejects(connectLink(srv.addr, certs(pki, 'source', 'target')), AuthError);
  // A source with a PSK against a certificate target.
  await assert.rejects(connectLink(srv.addr, ephemeralPsk()), AuthError);
  // Plaintext: speaks our framing without TLS; the server answers with a plaintext ERROR frame saying so, and closes.
  const plain = net.connect(srv.addr.kind === 'tcp' ? srv.addr.port : 0, '127.0.0.1');
  plain.on('error', () => {});
  plain.write(Buffer.from('464c494d0000000000000000000000000000', 'hex'));
  let answer = '';
  plain.on('data', (d) => (answer += d.toString('latin1')));
  await new Promise((r) => plain.on('close', r));
  assert.match(answer, /"code":"TLS_REQUIRED".*requires TLS/);

  const refused = await refusals(srv.lines, 3);
  assert.ok(refused.length >= 3, JSON.stringify(srv.lines));
  for (const l of refused) assert.ok(typeof l.reason === 'string' && l.reason.length > 0 && typeof l.peer === 'string', JSON.stringify(l));
  // The target keeps serving the right peer after all of that.
  assert.equal(await roundTrip(srv.addr, certs(pki, 'source')), 'ping');
});

test('certificates: the source refuses a target that presents a different role\'s certificate or another CA\'s', async (t) => {
  const dir = tempDir(t);
  makeCertificates(join(dir, 'a'), 30, false);
  makeCertificates(join(dir, 'b'), 30, false);
  // A server holding the source certificate, pretending to be the target.
  const fake = await echoServer(certs(join(dir, 'a'), 'source', 'source'));
  t.after(fake.close);
  await assert.rejects(connectLink(fake.addr, certs(join(dir, 'a'), 'source')), (e: unknown) => e instanceof AuthError && /flimcd-target|certificate/i.test((e as Error).message));
  const foreign = await echoServer(certs(join(dir, 'b'), 'target'));
  t.after(foreign.close);
  await assert.rejects(connectLink(foreign.addr, certs(join(dir, 'a'), 'source')), AuthError);
});

test('PSK: the right key links (TLS 1.3); a wrong key or identity is refused and logged; no plaintext fallback', async (t) => {
  const key = ephemeralPsk('dc-a') as Extract<LinkSecurity, { mode: 'psk' }>;
  const srv = await echoServer(key);
  t.after(srv.close);
  assert.equal(await roundTrip(srv.addr, key), 'ping');
  await assert.rejects(connectLink(srv.addr, { mode: 'psk', identity: 'dc-a', key: Buffer.alloc(32, 1) }), AuthError);
  await assert.rejects(connectLink(srv.addr, { mode: 'psk', identity: 'intruder', key: key.key }), AuthError);
  const refused = await refusals(srv.lines, 2);
  assert.ok(refused.some((l) => l.identity === 'intruder'), JSON.stringify(srv.lines));
  assert.equal(await roundTrip(srv.addr, key), 'ping');

  // A TLS client against a plaintext server fails instead of talking in the clear.
  const plain = await echoServer({ mode: 'insecure' });
  t.after(plain.close);
  await assert.rejects(connectLink(plain.addr, key), AuthError);
  assert.equal(await roundTrip(plain.addr, { mode: 'insecure' }), 'ping');
  assert.ok(plain.lines.some((l) => /plaintext/.test(String(l.msg))), 'an insecure listener says so in its log');
});

test('an unreachable peer is an IoError (retried by the source agent), not an AuthError', async () => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  await assert.rejects(connectLink({ kind: 'tcp', host: '127.0.0.1', port }, ephemeralPsk()), (e: unknown) => !(e instanceof AuthError) && (e as { code?: string }).code === 'FLIMCD_ERR_IO');
});

test('a refused peer is logged once with its address and the reason in words: wrong CA, wrong role, PSK mismatch, not TLS', async (t) => {
  const { dir, pki, other, srv } = await twoCasAndATarget(t);
  const reasonFor = async (sec: LinkSecurity) => {
    const before = (await refusals(srv.lines, 0)).length;
    await assert.rejects(connectLink(srv.addr, sec));
    const lines = await refusals(srv.lines, before + 1);
    assert.equal(lines.length, before + 1, `one line per refused peer: ${JSON.stringify(lines)}`);
    const l = lines.at(-1)!;
    assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/, JSON.stringify(l));
    assert.doesNotMatch(String(l.reason), /ECONNRESET|socket hang up/);
    return String(l.reason);
  };
  assert.match(await reasonFor(certs(other, 'source')), /wrong CA/);
  assert.match(await reasonFor(certs(pki, 'source', 'target')), /wrong role: it presents a target certificate \(flimcd-target\), this listener accepts only flimcd-source/);

  const key = ephemeralPsk('dc-a') as Extract<LinkSecurity, { mode: 'psk' }>;
  const psk = await echoServer(key);
  t.after(psk.close);
  await assert.rejects(connectLink(psk.addr, { mode: 'psk', identity: 'dc-a', key: Buffer.alloc(32, 1) }));
  const [mismatch] = await refusals(psk.lines, 1);
  assert.match(String(mismatch!.reason), /PSK mismatch/);
  assert.match(String(mismatch!.peer), /^127\.0\.0\.1:\d+$/);

  // On a unix socket there is no address: the line says it was a local process, and where.
  const { log, lines } = capturingLog();
  const server = createLinkServer(certs(pki, 'target'), (s) => s.end(), log);
  const path = join(dir, 'link.sock');
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const plain = net.connect(path);
  plain.on('error', () => {});
  plain.write(Buffer.alloc(16));
  plain.resume();
  await new Promise((r) => plain.on('close', r));
  const [local] = await refusals(lines, 1);
  assert.equal(local!.peer, `a local process on unix:${path}`);
  assert.match(String(local!.reason), /not TLS/);
});
