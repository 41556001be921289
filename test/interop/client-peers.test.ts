/**
 * Our NBD client against real servers: qemu-nbd (raw and qcow2, over Unix
 * sockets: QEMU 7.2's server lacks TCP_NODELAY, so multi-chunk reads over TCP
 * stall) and nbdkit (memory plugin over Unix and TCP, plus filters that
 * inject errors and enforce block sizes). Every write is mirrored into an
 * in-memory model; the disk is checked against it through our client and
 * through a peer tool (qemu-img compare, nbdcopy, qemu-io).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { NbdClient } from '../../src/nbd/client.ts';
import { ExtentFlags, type Extent } from '../../src/block/disk.ts';
import { InvalidArgumentError, NoSpaceError, ReadOnlyError } from '../../src/errors.ts';
import { nbdUri, type Address } from '../../src/util/address.ts';
import { PEER_PATH, requirePeers, runOk } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { freePort } from '../helpers/net.ts';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

/** Starts a server in the foreground and waits until it accepts connections; killed in t.after. */
async function startServer(t: TestContext, cmd: string, args: string[], addr: Address): Promise<void> {
  const child = spawn(cmd, args, { env: { ...process.env, PATH: PEER_PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => {
    exited = true;
    resolve();
  }));
  t.after(async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exit;
    clearTimeout(timer);
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`${cmd} ${args.join(' ')} exited early: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`${cmd} did not start listening in 10 s: ${stderr}`);
    // Unix: wait for the socket file (probing would count as a client); TCP: probe.
    if (addr.kind === 'unix' ? existsSync(addr.path) : await canConnect(addr.host, addr.port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}


function assertContiguous(exts: Extent[], offset: number, length: number): void {
  assert.ok(exts.length >= 1, 'at least one extent');
  let pos = offset;
  for (const e of exts) {
    assert.equal(e.offset, pos, `extents contiguous at ${pos}: ${JSON.stringify(exts)}`);
    assert.ok(e.length > 0);
    pos += e.length;
  }
  assert.ok(pos <= offset + length, 'extents stay inside the request');
}

/** Extents covering the whole range, asking again after short answers. */
async function allExtents(c: NbdClient, offset: number, length: number): Promise<Extent[]> {
  const out: Extent[] = [];
  let pos = offset;
  while (pos < offset + length) {
    const got = await c.extents(pos, offset + length - pos);
    assertContiguous(got, pos, offset + length - pos);
    out.push(...got);
    pos = got[got.length - 1]!.offset + got[got.length - 1]!.length;
  }
  return out;
}

function flagsOver(exts: Extent[]): number[] {
  return [...new Set(exts.map((e) => e.flags))];
}

interface Expect {
  /** Zeroing without NO_HOLE (and trimming) leaves a hole reported as HOLE|ZERO. */
  zeroMakesHole: boolean;
}

/**
 * The shared workout: patterned writes (aligned, unaligned, FUA, split), zero
 * and trim with block status checks, 200 pipelined random writes and reads,
 * and a whole-disk comparison with the model. Returns the model.
 */
async function exercise(c: NbdClient, expect: Expect): Promise<Buffer> {
  assert.equal(c.size, SIZE);
  assert.ok(!c.capabilities.readOnly);
  assert.ok(c.capabilities.canFlush && c.capabilities.canFua && c.capabilities.canZero && c.capabilities.canTrim);
  assert.ok(c.capabilities.canExtents, 'base:allocation negotiated');
  const model = Buffer.alloc(SIZE);

  // A fresh sparse disk is all hole.
  const fresh = await allExtents(c, 0, SIZE);
  assert.deepEqual(flagsOver(fresh), [ExtentFlags.HOLE | ExtentFlags.ZERO], JSON.stringify(fresh));

  const put = async (offset: number, data: Buffer, fua = false) => {
    await c.write(offset, data, { fua });
    data.copy(model, offset);
  };
  const check = async (offset: number, length: number) => {
    const b = Buffer.alloc(length, 0xee);
    await c.read(offset, b);
    assert.ok(b.equals(model.subarray(offset, offset + length)), `read ${offset}+${length} matches the model`);
  };

  await put(0, randomBytes(64 * 1024));
  await put(MiB + 1, randomBytes(10_001)); // unaligned both ends
  await put(5 * MiB, randomBytes(MiB), true);
  await put(8 * MiB, randomBytes(40 * MiB)); // larger than one request: split
  await check(0, 64 * 1024);
  await check(MiB - 100, 10_300);
  await check(5 * MiB, MiB);
  await check(8 * MiB - 7, 40 * MiB + 14);

  // Written data reports flags 0.
  assert.deepEqual(await c.extents(0, 64 * 1024), [{ offset: 0, length: 64 * 1024, flags: 0 }]);
  assert.deepEqual(flagsOver(await allExtents(c, 8 * MiB, 40 * MiB)), [0]);

  // Zeroing inside data: reads zero, block status says ZERO (and HOLE where the server punches).
  await c.writeZeroes(5 * MiB + 256 * 1024, 256 * 1024);
  model.fill(0, 5 * MiB + 256 * 1024, 5 * MiB + 512 * 1024);
  await check(5 * MiB, MiB);
  const zeroed = await allExtents(c, 5 * MiB + 256 * 1024, 256 * 1024);
  for (const e of zeroed) assert.ok(e.flags & ExtentFlags.ZERO, `zeroed range is ZERO: ${JSON.stringify(zeroed)}`);
  if (expect.zeroMakesHole) assert.deepEqual(flagsOver(zeroed), [ExtentFlags.HOLE | ExtentFlags.ZERO]);
  // ... and the data either side stays data.
  assert.deepEqual(await c.extents(5 * MiB, 256 * 1024), [{ offset: 5 * MiB, length: 256 * 1024, flags: 0 }]);

  await c.writeZeroes(12 * MiB, MiB, { noHole: true, fua: true });
  model.fill(0, 12 * MiB, 13 * MiB);
  await check(12 * MiB - 10, MiB + 20);

  // Trim: these servers discard for real, so the range reads zero and shows as a hole.
  await c.trim(20 * MiB, 2 * MiB);
  model.fill(0, 20 * MiB, 22 * MiB);
  await check(20 * MiB, 2 * MiB);
  if (expect.zeroMakesHole) assert.deepEqual(flagsOver(await allExtents(c, 20 * MiB, 2 * MiB)), [ExtentFlags.HOLE | ExtentFlags.ZERO]);

  // 200 pipelined random 4 KiB writes to distinct blocks, then 200 pipelined reads.
  const blocks = new Set<number>();
  while (blocks.size < 200) blocks.add(Math.floor(Math.random() * (SIZE / 4096)));
  const writes = [...blocks].map((b) => ({ offset: b * 4096, data: randomBytes(4096) }));
  const wp = Promise.all(writes.map((w) => c.write(w.offset, w.data)));
  assert.ok(c.inFlight > 1, `requests are pipelined (${c.inFlight} in flight)`);
  await wp;
  for (const w of writes) w.data.copy(model, w.offset);
  const bufs = writes.map(() => Buffer.alloc(4096));
  await Promise.all(writes.map((w, i) => c.read(w.offset, bufs[i]!)));
  writes.forEach((w, i) => assert.ok(bufs[i]!.equals(w.data), `pipelined read ${w.offset}`));

  await c.cache(0, MiB);
  await c.flush();
  // The whole disk, read through our client (64 MiB: two split requests).
  const all = Buffer.alloc(SIZE);
  await c.read(0, all);
  assert.ok(all.equals(model), 'whole disk matches the model');
  return model;
}

test('qemu-nbd raw over a Unix socket: read/write/zero/trim/extents/pipelining, checked with qemu-img and qemu-io', async (t) => {
  if (!requirePeers(t, 'qemu-nbd', 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'disk.raw');
  // Sparse from the start (qemu-img create would allocate the first 4 KiB).
  writeFileSync(img, '');
  truncateSync(img, SIZE);
  const addr: Address = { kind: 'unix', path: join(dir, 'q.sock') };
  // -t: stay up across connections; --discard=unmap: trims and zeroes punch holes.
  await startServer(t, 'qemu-nbd', ['-f', 'raw', '-k', addr.path, '-e', '4', '-t', '--discard=unmap', '--cache=writeback', img], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  const model = await exercise(c, { zeroMakesHole: true });

  // A second client (qemu-io through the NBD server) writes; we read it back.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 30M 64k', nbdUri(addr)]);
  const b = Buffer.alloc(64 * 1024);
  await c.read(30 * MiB, b);
  assert.ok(b.equals(Buffer.alloc(64 * 1024, 0x77)));
  model.fill(0x77, 30 * MiB, 30 * MiB + 64 * 1024);

  const expected = join(dir, 'expected.raw');
  writeFileSync(expected, model);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', nbdUri(addr), expected]);
  await c.close();
  // And the file itself, once the server has it on disk.
  assert.ok(readFileSync(img).equals(model), 'image file matches the model');
});

test('qemu-nbd qcow2 with a named export: workout, list, unknown export, on-disk check with qemu-io', async (t) => {
  if (!requirePeers(t, 'qemu-nbd', 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(SIZE)]);
  const addr: Address = { kind: 'unix', path: join(dir, 'q.sock') };
  await startServer(t, 'qemu-nbd', ['-f', 'qcow2', '-k', addr.path, '-e', '4', '-t', '--discard=unmap', '-x', 'disk0', '-D', 'qcow2 test disk', img], addr);

  assert.deepEqual(await NbdClient.list(addr), [{ name: 'disk0', description: 'qcow2 test disk' }]);
  await assert.rejects(NbdClient.connect(addr, { exportName: 'nope' }), (e: Error) => {
    assert.ok(e instanceof InvalidArgumentError, e.constructor.name);
    assert.match(e.message, /export "nope"/);
    return true;
  });

  const c = await NbdClient.connect(addr, { exportName: 'disk0' });
  t.after(() => c.close());
  assert.equal(c.exportName, 'disk0');
  assert.equal(c.description, 'qcow2 test disk');
  const model = await exercise(c, { zeroMakesHole: true });
  const expected = join(dir, 'expected.raw');
  writeFileSync(expected, model);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', nbdUri(addr, 'disk0'), expected]);
  await c.close();
  // The qcow2 file itself (no server involved) holds what we wrote.
  const at = 5 * MiB + 768 * 1024;
  const probe = model.subarray(at, at + 512);
  const file = join(dir, 'probe.bin');
  writeFileSync(file, probe);
  const r = await runOk('qemu-io', ['-U', '-r', '-f', 'qcow2', '-c', `read -v ${at} 512`, img]);
  const hex = [...r.stdout.matchAll(/^[0-9a-f]{8}: +((?:[0-9a-f]{2} ){15}[0-9a-f]{2})/gm)].map((m) => m[1]!.replace(/ /g, '')).join('');
  assert.equal(hex, probe.toString('hex'));
  await runOk('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', img, expected]);
});

test('qemu-nbd -r: read-only export refuses writes', async (t) => {
  if (!requirePeers(t, 'qemu-nbd', 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'ro.raw');
  writeFileSync(img, Buffer.alloc(MiB, 0x3c));
  const addr: Address = { kind: 'unix', path: join(dir, 'q.sock') };
  await startServer(t, 'qemu-nbd', ['-f', 'raw', '-k', addr.path, '-t', '-r', img], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  assert.ok(c.capabilities.readOnly);
  await assert.rejects(c.write(0, Buffer.alloc(512)), ReadOnlyError);
  await assert.rejects(c.writeZeroes(0, 512), ReadOnlyError);
  await assert.rejects(c.trim(0, 512), ReadOnlyError);
  const b = Buffer.alloc(MiB);
  await c.read(0, b);
  assert.ok(b.equals(Buffer.alloc(MiB, 0x3c)));
  await c.close();
  assert.ok(readFileSync(img).equals(Buffer.alloc(MiB, 0x3c)));
});

test('nbdkit memory over a Unix socket: workout, checked with nbdcopy', async (t) => {
  if (!requirePeers(t, 'nbdkit', 'nbdcopy')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  await startServer(t, 'nbdkit', ['-f', '-U', addr.path, 'memory', String(SIZE)], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  assert.ok(c.capabilities.canMultiConn && c.capabilities.canFastZero && c.capabilities.canCache);
  const model = await exercise(c, { zeroMakesHole: true });
  const out = join(dir, 'copy.raw');
  await runOk('nbdcopy', [nbdUri(addr), out]);
  assert.ok(readFileSync(out).equals(model), 'nbdcopy sees what we wrote');
  await c.close();
});

test('nbdkit memory over TCP: workout, checked with nbdcopy and qemu-img', async (t) => {
  if (!requirePeers(t, 'nbdkit', 'nbdcopy', 'qemu-img')) return;
  const dir = tempDir(t);
  const port = await freePort();
  const addr: Address = { kind: 'tcp', host: '127.0.0.1', port };
  await startServer(t, 'nbdkit', ['-f', '-p', String(port), '-i', '127.0.0.1', 'memory', String(SIZE)], addr);
  const c = await NbdClient.connect(`tcp:127.0.0.1:${port}`);
  t.after(() => c.close());
  const model = await exercise(c, { zeroMakesHole: true });
  const expected = join(dir, 'expected.raw');
  writeFileSync(expected, model);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', nbdUri(addr), expected]);
  const out = join(dir, 'copy.raw');
  await runOk('nbdcopy', [nbdUri(addr), out]);
  assert.ok(readFileSync(out).equals(model));
  await c.close();
});

test('nbdkit: NBD_OPT_LIST with several exports and descriptions; unknown export', async (t) => {
  if (!requirePeers(t, 'nbdkit')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  await startServer(t, 'nbdkit', [
    '-f', '-U', addr.path, '--filter=exportname', 'memory', '1M',
    'exportname=foo', 'exportname=bar', 'exportname-list=explicit', 'exportname-strict=true', 'exportdesc=fixed:in memory',
  ], addr);
  assert.deepEqual(await NbdClient.list(addr), [{ name: 'foo', description: 'in memory' }, { name: 'bar', description: 'in memory' }]);
  await assert.rejects(NbdClient.connect(addr, { exportName: 'baz' }), /export "baz".*not available/);
  const c = await NbdClient.connect(addr, { exportName: 'bar' });
  assert.equal(c.description, 'in memory');
  await c.close();
});

test('nbdkit error filter: server errnos surface as the matching errors with the server message', async (t) => {
  if (!requirePeers(t, 'nbdkit')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  await startServer(t, 'nbdkit', [
    '-f', '-U', addr.path, '--filter=error', 'memory', '1M',
    'error-pwrite=ENOSPC', 'error-pwrite-rate=100%', 'error-trim=EPERM', 'error-trim-rate=100%',
  ], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  await assert.rejects(c.write(0, Buffer.alloc(4096)), (e: Error) => e instanceof NoSpaceError && /WRITE 0\+4096.*ENOSPC/.test(e.message));
  await assert.rejects(c.trim(0, 4096), ReadOnlyError);
  // The connection survives request errors.
  const b = Buffer.alloc(4096, 1);
  await c.read(0, b);
  assert.ok(b.equals(Buffer.alloc(4096)));
  await c.close();
});

test('nbdkit blocksize-policy: minimum 512 / maximum 64 KiB are obeyed (splits, widened reads, refused unaligned writes)', async (t) => {
  if (!requirePeers(t, 'nbdkit')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  await startServer(t, 'nbdkit', [
    '-f', '-U', addr.path, '--filter=blocksize-policy', 'memory', '8M',
    'blocksize-minimum=512', 'blocksize-preferred=4096', 'blocksize-maximum=65536', 'blocksize-error-policy=error',
  ], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  assert.deepEqual(c.blockSize, { minimum: 512, preferred: 4096, maximum: 65536 });
  const data = randomBytes(MiB); // 16 server-sized requests
  await c.write(512, data);
  const b = Buffer.alloc(MiB - 1000);
  await c.read(1012, b); // unaligned: widened to 512-byte blocks
  assert.ok(b.equals(data.subarray(500, MiB - 500)));
  await assert.rejects(c.write(100, Buffer.alloc(512)), InvalidArgumentError);
  await c.writeZeroes(0, 2 * MiB); // larger than the maximum: split
  const z = Buffer.alloc(2 * MiB, 1);
  await c.read(0, z);
  assert.ok(z.equals(Buffer.alloc(2 * MiB)));
  await c.close();
});

test('nbdkit --no-sr: simple replies only; extents fall back to one data extent', async (t) => {
  if (!requirePeers(t, 'nbdkit')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  await startServer(t, 'nbdkit', ['-f', '-U', addr.path, '--no-sr', 'memory', '16M'], addr);
  const c = await NbdClient.connect(addr);
  t.after(() => c.close());
  assert.equal(c.structuredReplies, false);
  assert.equal(c.capabilities.canExtents, false);
  const data = randomBytes(3 * MiB);
  await c.write(123, data);
  const reads = await Promise.all([0, 1, 2].map(async (i) => {
    const b = Buffer.alloc(MiB);
    await c.read(123 + i * MiB, b);
    return b;
  }));
  assert.ok(Buffer.concat(reads).equals(data));
  assert.deepEqual(await c.extents(0, 4096), [{ offset: 0, length: 4096, flags: 0 }]);
  // Error replies arrive as simple replies too.
  await assert.rejects(c.read(16 * MiB - 10, Buffer.alloc(20)), InvalidArgumentError); // checked locally
  await c.close();
});

test('nbdkit killed mid-stream: pending requests reject, closed settles with the error', async (t) => {
  if (!requirePeers(t, 'nbdkit')) return;
  const dir = tempDir(t);
  const addr: Address = { kind: 'unix', path: join(dir, 'k.sock') };
  // The delay filter keeps reads in flight long enough to kill the server under them.
  const child = spawn('nbdkit', ['-f', '-U', addr.path, '--filter=delay', 'memory', '16M', 'rdelay=2'], {
    env: { ...process.env, PATH: PEER_PATH }, stdio: 'ignore',
  });
  t.after(() => child.kill('SIGKILL'));
  for (let i = 0; i < 200 && !existsSync(addr.path); i++) await new Promise((r) => setTimeout(r, 50));
  const c = await NbdClient.connect(addr);
  const reads = Array.from({ length: 8 }, (_, i) => c.read(i * 4096, Buffer.alloc(4096)));
  await new Promise((r) => setTimeout(r, 200));
  child.kill('SIGKILL');
  const settled = await Promise.allSettled(reads);
  assert.ok(settled.every((s) => s.status === 'rejected'), 'every pending read rejects');
  const err = await c.closed;
  assert.ok(err, 'closed settles with an error');
  await assert.rejects(c.read(0, Buffer.alloc(1)));
  await c.close();
});

