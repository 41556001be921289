// SIGINT and SIGTERM end an agent at once in every phase, with the shell's exit
// code (130, 143): while the source dials a target that is not there, during a
// handshake the target never answers, and while the target waits for a source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { flimcdBackground, flimcdWatched, type CliResult, type WatchedFlimcd } from '../helpers/cli.ts';
import { freePort, listenFor } from '../helpers/net.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';

const start = flimcdWatched;

/** Sends `signal` and returns the exit and how long it took; a process still running after 10 s is killed and fails the test. */
async function stopWith(p: Pick<WatchedFlimcd, 'child' | 'exited'>, signal: NodeJS.Signals): Promise<{ r: CliResult; ms: number }> {
  const t0 = Date.now();
  p.child.kill(signal);
  const late = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  const r = await p.exited;
  clearTimeout(late);
  assert.notEqual(r.signal, 'SIGKILL', `still running 10 s after ${signal}`);
  return { r, ms: Date.now() - t0 };
}

function image(dir: string): string {
  const img = join(dir, 'vm.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 5));
  return img;
}

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`source dialling a target that is not there stops at once on ${signal} (exit ${code}), socket removed, state kept`, async (t) => {
    const dir = tempDir(t);
    const img = image(dir);
    const sock = join(dir, 'src.sock');
    const port = await freePort();
    const p = start(t, ['source', '--insecure', '--image', img, '--nbd', `unix:${sock}`, '--to', `tcp:127.0.0.1:${port}`]);
    await until(() => p.seen(/waiting for the target agent/), 20_000, 'the source never dialled');
    assert.ok(existsSync(sock), 'the VM\'s socket is served while dialling');
    const { r, ms } = await stopWith(p, signal);
    assert.equal(r.code, code, p.output().slice(-2000));
    assert.ok(ms < 3000, `exited ${ms} ms after ${signal}`);
    assert.ok(!existsSync(sock), 'the NBD socket file is removed');
    assert.ok(existsSync(`${img}.flimcd`), 'the migration state stays for a resume');
    assert.match(r.stdout, new RegExp(`stopped by ${signal}.*resume`));
  });
}

test('source in a handshake the target never answers stops at once on SIGINT (exit 130)', async (t) => {
  const dir = tempDir(t);
  const img = image(dir);
  const sock = join(dir, 'src.sock');
  // Accepts the link and says nothing: the source waits for a WELCOME.
  const mute = net.createServer((s) => s.on('error', () => {}));
  const addr = await listenFor(t, mute);
  assert.equal(addr.kind, 'tcp');
  const p = start(t, ['source', '--insecure', '--image', img, '--nbd', `unix:${sock}`, '--to', `tcp:127.0.0.1:${addr.kind === 'tcp' ? addr.port : 0}`]);
  await until(() => p.seen(/link to the target established/), 20_000, 'the source never connected');
  const { r, ms } = await stopWith(p, 'SIGINT');
  assert.equal(r.code, 130, p.output().slice(-2000));
  assert.ok(ms < 3000, `exited ${ms} ms after SIGINT`);
  assert.ok(!existsSync(sock), 'the NBD socket file is removed');
  assert.ok(existsSync(`${img}.flimcd`), 'the migration state stays for a resume');
});

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`target waiting for a source exits ${code} on ${signal}`, async (t) => {
    const dir = tempDir(t);
    const target = await flimcdBackground(['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', `unix:${join(dir, 'link.sock')}`, '--nbd', `unix:${join(dir, 'dst.sock')}`], /waiting for the source/);
    t.after(() => target.child.kill('SIGKILL'));
    const { r } = await stopWith(target, signal);
    assert.equal(r.code, code, r.stderr.slice(-2000));
    assert.ok(!existsSync(join(dir, 'link.sock')), 'the link socket file is removed');
  });

  test(`export exits ${code} on ${signal}`, async (t) => {
    const dir = tempDir(t);
    const sock = join(dir, 'e.sock');
    const exp = await flimcdBackground(['export', '--image', image(dir), '--listen', `unix:${sock}`], /serving/);
    t.after(() => exp.child.kill('SIGKILL'));
    const { r } = await stopWith(exp, signal);
    assert.equal(r.code, code, r.stderr.slice(-2000));
    assert.ok(!existsSync(sock), 'the socket file is removed');
  });
}
