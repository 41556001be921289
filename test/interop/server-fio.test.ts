// fio's NBD engine (libnbd) against our server: random 4 KiB writes and
// mixed read/write with crc32c verification, over a FileDisk on a Unix
// socket; plus a negative control proving fio's verify does catch corruption
// in this setup (so the passing runs mean something).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk } from '../../src/block/file.ts';
import { requirePeers, run, type RunResult } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startServer } from '../helpers/nbd-server.ts';
import type { TestCtx } from '../helpers/test-context.ts';

const MiB = 1024 * 1024;
const DISK = 64 * MiB;
const AREA = 32 * MiB;

interface FioJob {
  error: number;
  read: { io_bytes: number };
  write: { io_bytes: number };
}

interface FioRun extends RunResult {
  job: FioJob | undefined;
}

/** Runs one fio job with the nbd engine; parses its JSON report (written to a file, away from the engine's chatter). */
async function fio(dir: string, uri: string, name: string, args: string[]): Promise<FioRun> {
  const out = join(dir, `${name}.json`);
  const r = await run('fio', [
    `--name=${name}`, '--ioengine=nbd', `--uri=${uri}`, '--bs=4k', '--iodepth=8', `--size=${AREA}`,
    '--randseed=20240501', '--verify=crc32c', '--verify_fatal=1',
    '--verify_state_save=0', // else fio drops *-verify.state files into the cwd
    '--output-format=json', `--output=${out}`, ...args,
  ], { timeoutMs: 60_000 });
  let job: FioJob | undefined;
  try {
    const text = readFileSync(out, 'utf8');
    const start = text.search(/^\{/m);
    job = (JSON.parse(text.slice(start, text.lastIndexOf('}') + 1)) as { jobs: FioJob[] }).jobs[0];
  } catch {
    job = undefined;
  }
  return { ...r, job };
}

function describe(r: FioRun): string {
  return `fio exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function assertClean(r: FioRun, what: string): FioJob {
  assert.equal(r.code, 0, `${what}: ${describe(r)}`);
  assert.ok(r.job, `${what}: no JSON report\n${describe(r)}`);
  assert.equal(r.job.error, 0, `${what}: job error ${r.job.error}\n${describe(r)}`);
  assert.doesNotMatch(r.stderr, /verify|bad magic|crc32c/i, `${what}: fio reported verify trouble\n${describe(r)}`);
  return r.job;
}

async function serveFile(t: TestCtx): Promise<{ dir: string; path: string; uri: string }> {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, DISK);
  closeSync(fd);
  const disk = await FileDisk.open(path, {});
  const { uri } = await startServer(t, dir, [{ name: 'fio', disk }]);
  // after() hooks run in registration order: this one follows the server's close.
  t.after(() => disk.close());
  return { dir, path, uri };
}

test('fio nbd engine: random 4 KiB writes verified with crc32c', async (t) => {
  if (!requirePeers(t, 'fio')) return;
  const { dir, uri } = await serveFile(t);
  const job = assertClean(await fio(dir, uri, 'randwrite', ['--rw=randwrite', '--do_verify=1']), 'randwrite + verify');
  assert.equal(job.write.io_bytes, AREA, 'every block of the area was written');
  assert.equal(job.read.io_bytes, AREA, 'and every block was read back and verified');
});

test('fio nbd engine: random 4 KiB mixed read/write verified with crc32c', async (t) => {
  if (!requirePeers(t, 'fio')) return;
  const { dir, uri } = await serveFile(t);
  // Reads of blocks fio has not written are not checked; those it wrote are verified after the mix.
  const job = assertClean(await fio(dir, uri, 'randrw', ['--rw=randrw', '--rwmixread=50', '--do_verify=1']), 'randrw + verify');
  assert.ok(job.write.io_bytes > AREA / 4, `a fair share were writes (${job.write.io_bytes} bytes)`);
  assert.ok(job.read.io_bytes >= job.write.io_bytes, 'reads include the verification of every write');
});

test('negative control: fio --verify_only fails on a block corrupted behind the server', async (t) => {
  if (!requirePeers(t, 'fio')) return;
  const { dir, path, uri } = await serveFile(t);
  assertClean(await fio(dir, uri, 'control', ['--rw=randwrite', '--do_verify=0']), 'write pass');
  // Replaying the same job and seed with --verify_only reads back and checks what was written
  // (it must not carry --do_verify=0, or fio silently verifies nothing): clean first...
  const verifyOnly = ['--rw=randwrite', '--verify_only'];
  const clean = assertClean(await fio(dir, uri, 'control', verifyOnly), 'verify_only on intact data');
  assert.equal(clean.read.io_bytes, AREA, 'verify_only read the whole area');

  // ...then with bytes changed in the file under the export (FileDisk has no cache, so the server serves them).
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from('corrupted!'), 0, 10, 5 * MiB + 1000);
  writeSync(fd, Buffer.from('corrupted!'), 0, 10, 20 * MiB + 8);
  closeSync(fd);
  const bad = await fio(dir, uri, 'control', verifyOnly);
  assert.notEqual(bad.code, 0, `fio must fail on corrupted data\n${describe(bad)}`);
  assert.match(bad.stderr, /verify failed|bad magic|verify: bad/i, `fio names the verify failure\n${describe(bad)}`);
  assert.ok(bad.job === undefined || bad.job.error !== 0, 'the job reports an error');
});
