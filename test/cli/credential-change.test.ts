// Credentials that stop matching in the middle of a session (the target was
// restarted with another key): the source must stop with a clear error and
// exit code 1, keeping its state for a restart, never Node's exit code 13 (an
// await that nothing settles), which is how an unhandled path on it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { formatPskFile } from '../../src/cli/security-options.ts';
import { flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

for (const algorithm of ['flimcd', 'postcopy']) {
test(`${algorithm}: a target restarted with another PSK mid-session: the source gives up with an authentication error, exit 1, state kept`, async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  await generateImage(src, 16 << 20, { seed: 5 });
  const pskA = join(dir, 'a.psk');
  const pskB = join(dir, 'b.psk');
  writeFileSync(pskA, formatPskFile('flimcd-a', randomBytes(32)), { mode: 0o600 });
  writeFileSync(pskB, formatPskFile('flimcd-a', randomBytes(32)), { mode: 0o600 });
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  const target = (psk: string, listen: string) => flimcdBackground(['target', '--psk-file', psk, '--image', dst, '--listen', listen, '--nbd', `unix:${join(dir, 'dst.sock')}`, '--json'], /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'info' } });
  const first = await target(pskA, 'tcp:127.0.0.1:0');
  kids.push(first.child);
  const listen = JSON.parse(first.line).listen as string;
  const port = Number(listen.split(':').pop());
  // Slow enough (8 Mbit/s) that the migration is still in pre-copy (post-copy's push) when the target is replaced.
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: { kind: 'tcp', host: '127.0.0.1', port }, bandwidthBps: 8e6, rttMs: 4 });
  const wanAddr = (await wan.listen()) as { port: number };
  t.after(async () => {
    for (const k of kids) k.kill('SIGKILL');
    await wan.close();
  });
  const source = await flimcdBackground(['source', '--psk-file', pskA, '--image', src, '--to', `tcp:127.0.0.1:${wanAddr.port}`, '--nbd', `unix:${join(dir, 'src.sock')}`, '--link-timeout', '30s', '--algorithm', algorithm, '--json'], /"event":"listening"/, { env: { FLIMCD_LOG_LEVEL: 'info' } });
  kids.push(source.child);
  await new Promise((r) => setTimeout(r, 2000));
  first.child.kill('SIGKILL');
  await first.exited;
  const second = await target(pskB, listen);
  kids.push(second.child);
  const t0 = Date.now();
  const r = await Promise.race([source.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`source still running 45 s after the key change\n${source.output().stderr.slice(-3000)}`)), 45_000))]);
  assert.equal(r.code, 1, `exit code ${r.code}\n${r.stderr.slice(-3000)}`);
  assert.match(r.stderr, /TLS link to tcp:127\.0\.0\.1:\d+ failed|authenticat/i);
  assert.ok(Date.now() - t0 < 40_000);
  assert.ok(existsSync(`${src}.flimcd/source.json`), 'the session state stays for a restart with the right key');
});
}
