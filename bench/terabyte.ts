/**
 * Terabyte disks: the real agents (child processes, loopback, plaintext) migrate a sparse image of
 * `--size` (default 1 TiB) whose first `--data` bytes (default 4 GiB) are a used disk's content
 * (src/workload/image-gen.ts: text-like, random and repeated blocks, 30 % holes), and, as the
 * baseline in the same run, the same content as an image of just `--data` bytes. Each agent's
 * peak RSS is its VmHWM as it exits (testing/terabyte/agents.ts).
 *
 *   npm run -s bench:terabyte [-- --json] [--size 1TiB] [--data 4GiB] [--runs 1]
 *
 * headline.rss_mib_1t: the larger agent's peak RSS in MiB at `--size` (goal <= 512).
 * headline.precopy_over_data_sized: pre-copy time at `--size` / at the data-sized image (about 1
 * when start-up reads no holes: the time is the data's, not the size's). Medians over runs.
 */
import { mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { median } from './stats.ts';
import { ratioOfMedians } from './headline.ts';
import { generateImage } from '../src/workload/image-gen.ts';
import { migrateWithAgents, type AgentsRun } from '../testing/terabyte/agents.ts';

const args = benchArgs('terabyte', `usage: npm run -s bench:terabyte [-- --json] [--size 1TiB] [--data 4GiB] [--runs N]
  --size   the sparse image's size (default 1TiB)
  --data   bytes of used-disk content at its start (default 4GiB; about 70 % allocated)
  --runs   migrations of each image (default 1)
  --json   one JSON object with the raw numbers and the headline`, {
  json: { type: 'boolean', default: false },
  size: { type: 'string' },
  data: { type: 'string' },
  runs: { type: 'string' },
});
const o = args.values;
const size = args.size(o.size, 2 ** 40, '--size');
const data = args.size(o.data, 4 * 2 ** 30, '--data');
const runs = args.int(o.runs, 1, '--runs');
if (data > size || data % 65536 !== 0) args.fail(`--data must be a whole number of 64 KiB blocks no larger than --size, got ${data}`);

interface Row { image: 'sized' | 'data_sized'; image_bytes: number; allocated_bytes: number; time_precopy_s: number; time_total_s: number; wall_s: number; rss_mib_source: number; rss_mib_target: number }

const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-tb-'));
const rows: Row[] = [];
try {
  for (let run = 0; run < runs; run++) {
    for (const image of ['data_sized', 'sized'] as const) {
      const work = mkdtempSync(join(dir, 'run-'));
      const src = join(work, 'src.img');
      // The same content each time (same seed), generated in place so its holes stay holes.
      await generateImage(src, data, { seed: 1 });
      if (image === 'sized') truncateSync(src, size);
      const r: AgentsRun = await migrateWithAgents({ dir: work, source: src, target: join(work, 'dst.img'), timeoutMs: 3_600_000 });
      if (r.report.verified !== true) throw new Error(`${image}: the migration was not verified`);
      rows.push({
        image, image_bytes: statSync(src).size, allocated_bytes: statSync(src).blocks * 512,
        time_precopy_s: Number(r.report.time_precopy_s), time_total_s: Number(r.report.time_total_s), wall_s: r.wallMs / 1000,
        rss_mib_source: Math.round(r.peakRssMiB.source), rss_mib_target: Math.round(r.peakRssMiB.target),
      });
      rmSync(work, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const of = (image: Row['image'], k: 'time_precopy_s' | 'rss_mib_source' | 'rss_mib_target' | 'time_total_s' | 'wall_s') => rows.filter((r) => r.image === image).map((r) => r[k]);
const headline = {
  rss_mib_1t: Math.max(median(of('sized', 'rss_mib_source')), median(of('sized', 'rss_mib_target'))),
  precopy_over_data_sized: Number(ratioOfMedians(of('sized', 'time_precopy_s'), of('data_sized', 'time_precopy_s')).toFixed(3)),
};
if (o.json) {
  console.log(JSON.stringify({ bench: 'terabyte', size, data, runs, rows, headline }));
} else {
  console.log(`terabyte: ${(size / 2 ** 40).toFixed(2)} TiB sparse with ${(data / 2 ** 30).toFixed(2)} GiB of content vs the content alone, ${runs} run(s)`);
  console.log('image        image GiB  alloc GiB  precopy s  total s  wall s  RSS src MiB  RSS tgt MiB');
  for (const r of rows) {
    console.log(`${r.image.padEnd(12)} ${(r.image_bytes / 2 ** 30).toFixed(0).padStart(9)} ${(r.allocated_bytes / 2 ** 30).toFixed(2).padStart(10)} ${r.time_precopy_s.toFixed(1).padStart(10)} ${r.time_total_s.toFixed(1).padStart(8)} ${r.wall_s.toFixed(1).padStart(7)} ${String(r.rss_mib_source).padStart(12)} ${String(r.rss_mib_target).padStart(12)}`);
  }
  console.log(`\nheadline: peak RSS ${headline.rss_mib_1t} MiB (goal <= 512); pre-copy takes ${headline.precopy_over_data_sized}x the data-sized image's`);
}
