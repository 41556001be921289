// libnbd's tools against our server: nbdinfo --list/--map, nbdcopy both ways,
// and an nbdsh script checking the errno of every kind of bad request and 64
// concurrent in-flight requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FileDisk } from '../../src/block/file.ts';
import { ReadOnlyDisk } from '../../src/block/filters/read-only.ts';
import { nbdUri } from '../../src/util/address.ts';
import { requirePeers, run, runOk } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startServer } from '../helpers/nbd-server.ts';

const MiB = 1024 * 1024;

function makeImage(path: string, size: number, data: Array<[number, number]>): Buffer {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [off, len] of data) {
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j += 4) b.writeUInt32LE((off + j) * 2246822519 >>> 0, j);
    writeSync(fd, b, 0, len, off);
  }
  closeSync(fd);
  return readFileSync(path);
}

test('nbdinfo --list shows every export with its description; --map shows data and holes', async (t) => {
  if (!requirePeers(t, 'nbdinfo')) return;
  const dir = tempDir(t);
  const a = join(dir, 'a.img');
  makeImage(a, 8 * MiB, [[0, MiB], [5 * MiB, 512 * 1024]]);
  const b = join(dir, 'b.img');
  makeImage(b, 4 * MiB, []);
  const da = await FileDisk.open(a, {});
  const db = new ReadOnlyDisk(await FileDisk.open(b, { readOnly: true }));
  t.after(async () => { await da.close(); await db.close(); });
  const { address } = await startServer(t, dir, [
    { name: 'alpha', disk: da, description: 'first disk' },
    { name: 'beta', disk: db, description: 'second, read-only' },
  ]);
  const list = JSON.parse((await runOk('nbdinfo', ['--list', '--json', nbdUri(address, '')])).stdout);
  const names = list.exports.map((e: { 'export-name': string }) => e['export-name']);
  assert.deepEqual(names, ['alpha', 'beta']);
  const beta = list.exports.find((e: { 'export-name': string }) => e['export-name'] === 'beta');
  assert.equal(beta.description, 'second, read-only');
  assert.equal(beta['is_read_only'], true);
  assert.equal(beta['export-size'], 4 * MiB);

  const map = JSON.parse((await runOk('nbdinfo', ['--map', '--json', nbdUri(address, 'alpha')])).stdout) as Array<{ offset: number; length: number; type: number }>;
  const data = map.filter((m) => m.type === 0).map((m) => [m.offset, m.length]);
  assert.deepEqual(data, [[0, MiB], [5 * MiB, 512 * 1024]]);
  assert.ok(map.filter((m) => m.type !== 0).every((m) => m.type === 3), 'holes are hole+zero');
  const total = map.reduce((s, m) => s + m.length, 0);
  assert.equal(total, 8 * MiB);
});

test('nbdcopy from our export to a file and from a file into our export', async (t) => {
  if (!requirePeers(t, 'nbdcopy')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const content = makeImage(src, 32 * MiB, [[0, 3 * MiB], [10 * MiB + 4096, 7 * MiB], [31 * MiB, MiB]]);
  const srcDisk = await FileDisk.open(src, { readOnly: true });
  const dst = join(dir, 'dst.img');
  makeImage(dst, 32 * MiB, [[0, 32 * MiB]]); // junk everywhere: zero regions must be written
  const dstDisk = await FileDisk.open(dst, {});
  t.after(async () => { await srcDisk.close(); await dstDisk.close(); });
  const { address } = await startServer(t, dir, [{ name: 'src', disk: srcDisk }, { name: 'dst', disk: dstDisk }]);

  const out = join(dir, 'out.img');
  makeImage(out, 32 * MiB, []);
  await runOk('nbdcopy', [nbdUri(address, 'src'), out], { timeoutMs: 60000 });
  assert.ok(readFileSync(out).equals(content), 'export → file is byte-exact');

  await runOk('nbdcopy', ['--flush', src, nbdUri(address, 'dst')], { timeoutMs: 60000 });
  assert.ok(readFileSync(dst).equals(content), 'file → export is byte-exact');
});

const NBDSH_SCRIPT = String.raw`
import errno, os
uri_rw, uri_ro = os.environ["URI_RW"], os.environ["URI_RO"]

def connect(uri, meta=True):
    h = nbd.NBD()
    h.set_strict_mode(0)          # send bad requests to the server instead of refusing them locally
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    return h

results = []
def expect(name, fn, want):
    try:
        fn()
        results.append("%s: no error (wanted %s)" % (name, errno.errorcode[want]))
    except nbd.Error as e:
        if e.errnum != want:
            results.append("%s: got %s (wanted %s): %s" % (name, errno.errorcode.get(e.errnum, e.errnum), errno.errorcode[want], e.string))

h = connect(uri_rw)
size = h.get_size()
expect("read past end", lambda: h.pread(4096, size - 2048), errno.EINVAL)
expect("read at end", lambda: h.pread(1, size), errno.EINVAL)
expect("write past end", lambda: h.pwrite(b"x" * 4096, size - 1024), errno.ENOSPC)
expect("trim past end", lambda: h.trim(8192, size - 4096), errno.ENOSPC)
expect("zero past end", lambda: h.zero(8192, size), errno.ENOSPC)
expect("cache past end", lambda: h.cache(4096, size), errno.EINVAL)
expect("block status past end", lambda: h.block_status(4096, size, lambda *a: 0), errno.EINVAL)
expect("read with REQ_ONE flag", lambda: h.pread(4096, 0, flags=nbd.CMD_FLAG_REQ_ONE), errno.EINVAL)
expect("write with NO_HOLE flag", lambda: h.pwrite(b"y" * 512, 0, flags=nbd.CMD_FLAG_NO_HOLE), errno.EINVAL)
expect("trim with FAST_ZERO flag", lambda: h.trim(4096, 0, flags=nbd.CMD_FLAG_FAST_ZERO), errno.EINVAL)
expect("read over the payload limit", lambda: h.pread(64 * 1024 * 1024, 0), errno.EOVERFLOW)
expect("write over the payload limit", lambda: h.pwrite(bytearray(33 * 1024 * 1024), 0), errno.EOVERFLOW)
# The connection lives on after all of that.
h.pwrite(b"\xab" * 4096, 8192)
assert h.pread(4096, 8192) == b"\xab" * 4096, "connection still works after errors"

ro = connect(uri_ro)
expect("write on read-only", lambda: ro.pwrite(b"z" * 4096, 0), errno.EPERM)
expect("trim on read-only", lambda: ro.trim(4096, 0), errno.EPERM)
expect("zero on read-only", lambda: ro.zero(4096, 0), errno.EPERM)
assert len(ro.pread(4096, 0)) == 4096

nm = connect(uri_rw, meta=False)
expect("block status without a meta context", lambda: nm.block_status(4096, 0, lambda *a: 0), errno.EINVAL)

# 64 requests in flight at once on one connection, all verified.
N, BS = 64, 65536
bufs = [nbd.Buffer.from_bytearray(bytearray([i + 1]) * BS) for i in range(N)]
cookies = [h.aio_pwrite(bufs[i], 1048576 + i * BS) for i in range(N)]
peak = h.aio_in_flight()
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    assert h.aio_command_completed(c) or True
rbufs = [nbd.Buffer(BS) for _ in range(N)]
rcookies = [h.aio_pread(rbufs[i], 1048576 + i * BS) for i in range(N)]
rpeak = h.aio_in_flight()
while h.aio_in_flight() > 0:
    h.poll(-1)
for i in range(N):
    if rbufs[i].to_bytearray() != bytearray([i + 1]) * BS:
        results.append("in-flight read %d returned wrong data" % i)
print("peak in flight: write %d read %d" % (peak, rpeak))
if peak < N or rpeak < N:
    results.append("only %d/%d requests were in flight" % (min(peak, rpeak), N))
h.shutdown()
ro.shutdown()
if results:
    print("\n".join(results))
    raise SystemExit(1)
print("all bad requests got the right errno")
`;

test('nbdsh: each kind of bad request gets its NBD errno, and 64 concurrent requests complete correctly', async (t) => {
  if (!requirePeers(t, 'nbdsh')) return;
  const dir = tempDir(t);
  const a = join(dir, 'rw.img');
  makeImage(a, 16 * MiB, []);
  const rw = await FileDisk.open(a, {});
  const ro = new ReadOnlyDisk(await FileDisk.open(a, { readOnly: true }));
  t.after(async () => { await rw.close(); await ro.close(); });
  const { address } = await startServer(t, dir, [{ name: 'rw', disk: rw }, { name: 'ro', disk: ro }]);
  const r = await run('nbdsh', ['-c', NBDSH_SCRIPT], {
    env: { URI_RW: nbdUri(address, 'rw'), URI_RO: nbdUri(address, 'ro') },
    timeoutMs: 60000,
  });
  assert.equal(r.code, 0, `nbdsh failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /peak in flight: write 64 read 64/);
  assert.match(r.stdout, /all bad requests got the right errno/);
  const file = readFileSync(a);
  for (let i = 0; i < 64; i++) assert.equal(file[MiB + i * 65536], i + 1);
});
