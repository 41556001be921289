// `flimcd simulate` and `flimcd plan` as a user runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'node:fs/promises';
import { flimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { synthesizeFiuTrace } from '../../src/workload/fiu-synth.ts';

test('simulate --json: every algorithm on a profile, verified, with the measures', async () => {
  const r = await flimcd(['simulate', '--workload', 'moderate', '--image-size', '64MiB', '--bandwidth', '50Mbit', '--rtt', '30ms', '--algorithm', 'all', '--warmup', '3s', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.results.map((x: { algorithm: string }) => x.algorithm), ['precopy', 'postcopy', 'hybrid', 'flimcd']);
  for (const x of out.results) {
    assert.equal(x.verified, true);
    for (const k of ['time_total_s', 'wire_bytes', 'downtime_ms', 'block_miss_rate']) assert.equal(typeof x[k], 'number', k);
  }
  assert.equal(out.bandwidth_bps, 50e6);
  assert.equal(out.rtt_ms, 30);
});

test('simulate: an FIU trace replays (time-scaled); a malformed line is a usage error naming the line', async (t) => {
  const dir = tempDir(t);
  const trace = join(dir, 'homes.fiu');
  writeFileSync(trace, synthesizeFiuTrace({ imageBytes: 32 * 2 ** 20, seconds: 60, seed: 3 }).join('\n') + '\n');
  const r = await flimcd(['simulate', '--workload', `trace:${trace}`, '--image-size', '32MiB', '--bandwidth', '50Mbit', '--rtt', '10ms', '--algorithm', 'flimcd,postcopy', '--time-scale', '10', '--warmup', '1s']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /flimcd .* yes/);
  const bad = join(dir, 'bad.fiu');
  writeFileSync(bad, readFileSync(trace, 'utf8').split('\n').slice(0, 5).join('\n') + '\n123 not a record\n');
  const e = await flimcd(['simulate', '--workload', `trace:${bad}`, '--image-size', '32MiB', '--algorithm', 'flimcd']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /line 6/);
});

test('simulate: bad input gets a clear error and exit code 2', async () => {
  for (const [args, msg] of [
    [['--workload', 'busy'], /unknown workload "busy"/],
    [['--workload', 'light', '--algorithm', 'fast'], /unknown algorithm "fast"/],
    [['--workload', 'light', '--bandwidth', 'lots'], /--bandwidth/],
    [['--workload', 'light', '--image-size', '12 apples'], /--image-size/],
    [['--workload', 'light', '--image-size', '8MiB', '--target-holds', 'everything'], /--target-holds: "everything" must be none or base/],
    [['--workload', 'light', '--image-size', '8MiB', '--target-holds', 'base', '--base-share', '150%'], /--base-share/],
  ] as Array<[string[], RegExp]>) {
    const r = await flimcd(['simulate', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, msg);
  }
  const h = await flimcd(['simulate', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--workload <spec>/);
  assert.match(h.stdout, /--target-holds <what>/);
});

test('simulate --[no-]hot-order, --[no-]prefetch: ablations on any algorithm, postcopy included', async () => {
  const base = ['simulate', '--workload', 'moderate', '--image-size', '32MiB', '--bandwidth', '50Mbit', '--rtt', '20ms', '--warmup', '3s', '--json'];
  const r = await flimcd([...base, '--algorithm', 'postcopy,flimcd', '--hot-order', '--prefetch', '--no-dedup']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout).results;
  assert.deepEqual(rows.map((x: { algorithm: string }) => x.algorithm), ['postcopy+hot-order+prefetch', 'flimcd-no-dedup']);
  assert.ok(rows.every((x: { verified: boolean }) => x.verified));
  const plain = JSON.parse((await flimcd([...base, '--algorithm', 'postcopy'])).stdout).results[0];
  // The switches reach the engines: the same requests, a different post-copy.
  assert.notEqual(rows[0].block_miss_rate, plain.block_miss_rate);
});

test('simulate --target-holds base: flimcd uses the base the target holds, precopy cannot', async () => {
  const args = ['simulate', '--workload', 'moderate', '--image-size', '32MiB', '--bandwidth', '50Mbit', '--rtt', '20ms', '--algorithm', 'precopy,flimcd', '--warmup', '2s', '--json'];
  const none = JSON.parse((await flimcd(args)).stdout);
  const r = await flimcd([...args, '--target-holds', 'base', '--base-share', '50%']);
  assert.equal(r.code, 0, r.stderr);
  const base = JSON.parse(r.stdout);
  assert.equal(base.target_holds, 'base');
  assert.equal(base.base_share, 0.5);
  assert.equal(base.results[0].wire_bytes, none.results[0].wire_bytes, 'precopy sends the same bytes');
  assert.ok(base.results[1].wire_bytes < 0.8 * none.results[1].wire_bytes, `flimcd ${base.results[1].wire_bytes} vs ${none.results[1].wire_bytes}`);
});

test('plan: watches the live image, sees the writes, simulates the algorithms and recommends one', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 32 * 2 ** 20, { seed: 4 });
  // A "VM" writing a new 64 KiB block every 100 ms into the live image for the whole plan.
  const planning = flimcd(['plan', '--image', img, '--bandwidth', '20Mbit', '--rtt', '20ms', '--watch', '3s', '--json', '--out', join(dir, 'plan.json')]);
  const fh = await open(img, 'r+');
  let writing = true;
  const writer = (async () => {
    const block = Buffer.alloc(65536, 0x5a);
    for (let i = 0; writing; i++) {
      block.writeUInt32LE(i, 0);
      await fh.write(block, 0, block.length, (i * 5 * 65536) % (32 * 2 ** 20));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await planning;
  writing = false;
  await writer;
  await fh.close();
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout);
  // At most 10 blocks/s of 64 KiB (655 kB/s); timer slack on a busy machine makes it less.
  assert.ok(p.observation.changedBlocks >= 5, `saw ${p.observation.changedBlocks} changed blocks`);
  assert.ok(p.observation.dirtyBytesPerSec > 0.1e6 && p.observation.dirtyBytesPerSec < 0.75e6, `dirty rate ${p.observation.dirtyBytesPerSec}`);
  assert.deepEqual(p.rows.map((x: { algorithm: string }) => x.algorithm), ['precopy', 'postcopy', 'hybrid', 'flimcd']);
  const best = p.rows.find((x: { algorithm: string }) => x.algorithm === p.recommended);
  for (const x of p.rows) assert.ok(best.time_total_s <= x.time_total_s, 'the recommendation is the fastest');
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')).rows, p.rows);
  const h = await flimcd(['plan', '--help']);
  assert.match(h.stdout, /--watch <duration>/);
  const e = await flimcd(['plan', '--image', join(dir, 'missing.img')]);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /--image: .*missing\.img does not exist/);
});

test('plan --index: blocks the target\'s replica index holds are planned as local, so flimcd predicts far fewer wire bytes', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 16 * 2 ** 20, { seed: 6 });
  const base = join(dir, 'base.img');
  writeFileSync(base, readFileSync(img));
  const idx = join(dir, 'index');
  const add = await flimcd(['index', 'add', '--index', idx, base]);
  assert.equal(add.code, 0, add.stderr);
  const args = ['plan', '--image', img, '--bandwidth', '50Mbit', '--rtt', '20ms', '--workload', 'light', '--algorithm', 'precopy,flimcd', '--json'];
  const without = JSON.parse((await flimcd(args)).stdout);
  const r = await flimcd([...args, '--index', idx]);
  assert.equal(r.code, 0, r.stderr);
  const withIdx = JSON.parse(r.stdout);
  assert.ok(withIdx.index_blocks > 0);
  const wire = (p: { rows: Array<{ algorithm: string; wire_bytes: number }> }, a: string) => p.rows.find((x) => x.algorithm === a)!.wire_bytes;
  assert.ok(wire(withIdx, 'flimcd') < 0.3 * wire(without, 'flimcd'), `${wire(withIdx, 'flimcd')} vs ${wire(without, 'flimcd')}`);
  // precopy has no dedup: the index does not help it.
  assert.ok(wire(withIdx, 'precopy') > 0.8 * wire(without, 'precopy'));
});
