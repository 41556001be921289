/**
 * What the target's post-copy durability costs the VM: first writes to blocks
 * at the target (each must be recorded durably before it is acknowledged, as
 * a written block, and as present when it claims a missing one) through the
 * post-copy filter on a real image file, with the group-committed presence
 * log versus with no durability at all (the pre-resume behaviour), and versus
 * one fsync per record (what group commit avoids).
 *
 *   npm run -s bench:durability [-- --json] [--runs 5] [--writes 4000] [--depth 16]
 *
 * headline.group_commit_over_none: VM write time with durability / without
 * (above 1 = the cost). headline.per_record_over_group_commit: what one fsync
 * per record would cost instead (above 1 = group commit is cheaper).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { FileDisk } from '../src/block/file.ts';
import { PostcopyDisk } from '../src/block/filters/postcopy.ts';
import { PresenceLog } from '../src/migrate/state-dir.ts';
import { Bitmap } from '../src/util/bitmap.ts';
import { realClock } from '../src/util/clock.ts';
import { Prng } from '../src/workload/prng.ts';
import { median } from './stats.ts';

type Mode = 'none' | 'group_commit' | 'per_record';
const BLOCK = 65536;

async function runOnce(mode: Mode, writes: number, depth: number, seed: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-dur-'));
  try {
    const n = writes * 2;
    const disk = await FileDisk.open(join(dir, 'img'), { create: true, size: n * BLOCK });
    let logf: PresenceLog | undefined;
    let closeLog: (() => Promise<void>) | undefined;
    let persist: ((kind: 0 | 1, blocks: number[]) => Promise<void>) | undefined;
    if (mode === 'group_commit') {
      logf = await PresenceLog.open(join(dir, 'presence.log'), () => disk.flush());
      persist = (k, b) => logf!.append(k, b);
    } else if (mode === 'per_record') {
      const fh = await open(join(dir, 'presence.log'), 'a');
      closeLog = () => fh.close();
      let chain = Promise.resolve();
      // One record, one data sync and one log fsync at a time: no batching.
      persist = (k, b) => (chain = chain.then(async () => {
        await disk.flush();
        const buf = Buffer.alloc(4 * b.length);
        b.forEach((x, i) => buf.writeUInt32BE(((k << 31) | x) >>> 0, i * 4));
        await fh.write(buf);
        await fh.datasync();
      }));
    }
    const pc = new PostcopyDisk(disk, BLOCK, { fetch: () => {}, cancel: () => {} }, realClock, { persist });
    // Half the blocks still missing: whole-block writes to them claim them (a presence record too).
    const missing = new Bitmap(n);
    for (let b = 0; b < n; b += 2) missing.set(b);
    pc.restore(missing, new Bitmap(n));
    const rng = new Prng(seed);
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [order[i], order[j]] = [order[j]!, order[i]!]; }
    const data = Buffer.alloc(BLOCK, 0x5a);
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: depth }, async () => {
      while (next < writes) {
        const b = order[next++]!;
        await pc.write(b * BLOCK, data);
      }
    }));
    const ms = performance.now() - t0;
    await logf?.close();
    await closeLog?.();
    await disk.close();
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = benchArgs('durability', `usage: npm run -s bench:durability [-- --json] [--runs N] [--writes N] [--depth N]
  --runs N    runs per mode, median reported (default 5)
  --writes N  first writes per run, 64 KiB each, distinct blocks (default 4000)
  --depth N   concurrent VM writes (default 16)
`, {
  json: { type: 'boolean', default: false },
  runs: { type: 'string' },
  writes: { type: 'string' },
  depth: { type: 'string' },
});
const o = args.values;
const runs = args.int(o.runs, 5, '--runs');
const writes = args.int(o.writes, 4000, '--writes');
const depth = args.int(o.depth, 16, '--depth');
const modes: Mode[] = ['none', 'group_commit', 'per_record'];
const samples: Record<Mode, number[]> = { none: [], group_commit: [], per_record: [] };
for (let r = 0; r < runs; r++) for (const m of modes) samples[m].push(await runOnce(m, m === 'per_record' ? Math.min(writes, 1000) : writes, depth, r + 1));
// per_record runs fewer writes (it is slow): compare per-write times.
const perWrite = (m: Mode) => median(samples[m]) / (m === 'per_record' ? Math.min(writes, 1000) : writes);
const rows = modes.map((m) => ({ mode: m, median_ms_per_1000_writes: +(perWrite(m) * 1000).toFixed(1), writes_per_s: Math.round(1000 / perWrite(m)) }));
const headline = {
  group_commit_over_none: +(perWrite('group_commit') / perWrite('none')).toFixed(2),
  per_record_over_group_commit: +(perWrite('per_record') / perWrite('group_commit')).toFixed(2),
};
if (o.json) {
  console.log(JSON.stringify({ bench: 'durability', writes, depth, runs, rows, headline }));
} else {
  console.log(`post-copy first writes at the target, 64 KiB, depth ${depth}, median of ${runs} runs`);
  console.log('mode           ms/1000 writes   writes/s');
  for (const r of rows) console.log(`${r.mode.padEnd(14)} ${String(r.median_ms_per_1000_writes).padStart(14)} ${String(r.writes_per_s).padStart(10)}`);
  console.log(`\nheadline: durability costs ${headline.group_commit_over_none}x the write time of none; one fsync per record would cost ${headline.per_record_over_group_commit}x group commit`);
}
