// Sixteen NBD clients at once on the target's export during post-copy, while
// the background push runs over a TLS link: 12 of ours and 4 nbdsh (libnbd)
// processes. Each owns a region it writes and reads back; all also read
// regions nobody writes and compare them with the source's content. All data
// stays correct, the migration verifies, and the final image is exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { NbdClient } from '../../src/nbd/client.ts';
import { nbdUri, type Address } from '../../src/util/address.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';
import { requirePeers, run } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startAgentPair } from '../helpers/agent-pair.ts';

const MiB = 1 << 20;
const SIZE = 32 * MiB;
const SLOT = 2 * MiB;
const OURS = 12;
const THEIRS = 4;
/** Client i owns [i*SLOT + 12345, +len): odd offsets, so writes straddle 64 KiB blocks. */
const regionOf = (i: number) => ({ off: i * SLOT + 12345, len: i < OURS ? MiB : 256 * 1024 });
/** The second MiB of every slot is never written: reads there must return the source's bytes. */
const UNTOUCHED = Array.from({ length: SIZE / SLOT }, (_, i) => [i * SLOT + MiB + 65536, MiB - 65536 - 4096] as const);

/** nbdsh (libnbd's Python shell) as a client: writes and read-backs in its region, hashes of untouched ranges. */
const NBDSH_SCRIPT = `
import os, json, random, hashlib, base64
off = int(os.environ['OFF']); size = int(os.environ['LEN']); rng = random.Random(int(os.environ['SEED']))
untouched = json.loads(os.environ['UNTOUCHED'])
model = bytearray(h.pread(size, off))
out = {'initial': hashlib.sha256(model).hexdigest(), 'untouched': [], 'mismatches': 0, 'ops': 1}
for i in range(int(os.environ['ROUNDS'])):
    o = rng.randrange(0, size - 1); l = rng.randrange(1, min(70000, size - o) + 1)
    data = rng.randbytes(l); h.pwrite(data, off + o); model[o:o + l] = data
    ro = rng.randrange(0, size - 1); rl = rng.randrange(1, min(70000, size - ro) + 1)
    if h.pread(rl, off + ro) != bytes(model[ro:ro + rl]): out['mismatches'] += 1
    uo, ul = untouched[rng.randrange(len(untouched))]; a = uo + rng.randrange(0, ul - 4096); n = rng.randrange(1, 4097)
    out['untouched'].append([a, n, hashlib.sha256(h.pread(n, a)).hexdigest()])
    out['ops'] += 3
if h.pread(size, off) != bytes(model): out['mismatches'] += 1
h.flush()
out['final'] = base64.b64encode(model).decode()
print(json.dumps(out))
`;

interface ClientResult { ops: number; mismatches: string[]; model: Buffer }

/** One of our clients: random writes, read-backs and untouched reads until told to stop, then a full check of its region. */
async function ourClient(addr: Address, i: number, original: Buffer, stop: () => boolean): Promise<ClientResult> {
  const { off, len } = regionOf(i);
  const model = Buffer.from(original.subarray(off, off + len));
  const rng = new Prng(1000 + i);
  const c = await NbdClient.connect(addr);
  const mismatches: string[] = [];
  let ops = 0;
  try {
    while (!stop() || ops < 30) {
      const kind = rng.int(10);
      if (kind < 4) {
        const o = rng.int(len - 1);
        const data = Buffer.allocUnsafe(1 + rng.int(Math.min(70000, len - o)));
        rng.fill(data);
        await c.write(off + o, data);
        data.copy(model, o);
      } else if (kind < 7) {
        const o = rng.int(len - 1);
        const got = Buffer.alloc(1 + rng.int(Math.min(70000, len - o)));
        await c.read(off + o, got);
        if (!got.equals(model.subarray(o, o + got.length))) mismatches.push(`client ${i}: own read ${off + o}+${got.length}`);
      } else {
        const [uo, ul] = UNTOUCHED[rng.int(UNTOUCHED.length)]!;
        const a = uo + rng.int(ul - 70000);
        const got = Buffer.alloc(1 + rng.int(70000));
        await c.read(a, got);
        if (!got.equals(original.subarray(a, a + got.length))) mismatches.push(`client ${i}: untouched read ${a}+${got.length}`);
      }
      ops++;
    }
    const all = Buffer.alloc(len);
    await c.read(off, all);
    if (!all.equals(model)) mismatches.push(`client ${i}: final region read`);
    await c.flush();
  } finally {
    await c.close();
  }
  return { ops, mismatches, model };
}

test('16 concurrent NBD clients (ours and nbdsh) do verified I/O at the target during post-copy; all data correct', async (t) => {
  if (!requirePeers(t, 'nbdsh')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  const original = Buffer.allocUnsafe(SIZE);
  new Prng(77).fill(original);
  writeFileSync(src, original);

  // 32 MiB of incompressible data at 50 Mbit/s: the background push takes ~6 s, the clients run throughout.
  const pair = await startAgentPair({ dir, sourceImage: src, algorithm: 'postcopy', bandwidthBps: 50e6, rttMs: 10, log });
  t.after(() => pair.close());
  const { source, target } = pair;

  let postcopy!: () => void;
  const inPostcopy = new Promise<void>((r) => (postcopy = r));
  const poll = setInterval(() => { if (target.status().phase === 'postcopy') postcopy(); }, 10);
  const migrating = source.migrate();
  await inPostcopy;
  clearInterval(poll);
  const atStart = target.status();
  assert.ok(Number(atStart.missingBlocks) > (SIZE / 65536) / 2, `most blocks still missing when the load starts (${atStart.missingBlocks})`);

  let migrated = false;
  const done = migrating.then(async (r) => { await target.result(); migrated = true; return r; });
  const addr = target.nbdAddress!;
  const ours = Array.from({ length: OURS }, (_, i) => ourClient(addr, i, original, () => migrated));
  const theirs = Array.from({ length: THEIRS }, (_, k) => {
    const i = OURS + k;
    const { off, len } = regionOf(i);
    return run('nbdsh', ['-u', nbdUri(addr, ''), '-c', NBDSH_SCRIPT], {
      timeoutMs: 120_000,
      env: { OFF: String(off), LEN: String(len), SEED: String(i), ROUNDS: '40', UNTOUCHED: JSON.stringify(UNTOUCHED) },
    });
  });
  const ext = await Promise.all(theirs);
  const statusUnderLoad = target.status();
  const report = await done;
  const results = await Promise.all(ours);

  assert.equal(report.verified, true);
  assert.ok(Number(statusUnderLoad.missBlocks) > 0, 'the clients hit missing blocks (fetched on demand ahead of the push)');
  const expected = Buffer.from(original);
  for (const [i, r] of results.entries()) {
    assert.deepEqual(r.mismatches, [], `client ${i}`);
    assert.ok(r.ops >= 30, `client ${i} did ${r.ops} ops`);
    r.model.copy(expected, regionOf(i).off);
  }
  let extOps = 0;
  for (const [k, r] of ext.entries()) {
    const i = OURS + k;
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    const { off, len } = regionOf(i);
    assert.equal(o.mismatches, 0, `nbdsh client ${i}`);
    extOps += o.ops;
    assert.equal(o.initial, createHash('sha256').update(original.subarray(off, off + len)).digest('hex'), `nbdsh client ${i} first read of its region = the source's content`);
    for (const [a, n, h] of o.untouched as Array<[number, number, string]>) {
      assert.equal(h, createHash('sha256').update(original.subarray(a, a + n)).digest('hex'), `nbdsh client ${i} untouched read ${a}+${n}`);
    }
    Buffer.from(o.final, 'base64').copy(expected, off);
  }
  t.diagnostic(`ops: ours ${results.reduce((a, r) => a + r.ops, 0)}, nbdsh ${extOps}; misses ${statusUnderLoad.missBlocks}; time_total ${report.time_total_s.toFixed(1)} s`);
  // Every byte of the target image: the source's content plus exactly what the clients wrote.
  const out = readFileSync(pair.dst);
  assert.ok(out.equals(expected), 'target image = source + client writes');
});
