/**
 * bench:perf's guest I/O: the same fio job (4 KiB random, 70 % reads, queue depth 8) through the
 * source agent's NBD export while it pre-copies, and through `flimcd export` of the same image with
 * no migration: `guest_io_ratio` = IOPS with / IOPS without (goal >= 0.9).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateImage } from '../../src/workload/image-gen.ts';
import { migrateThroughWan } from './agents.ts';
import { measureIops } from './fio-load.ts';

const BIN = fileURLToPath(new URL('../../bin/flimcd.js', import.meta.url));

export interface GuestIoResult { iops_alone: number; iops_migrating: number; guest_io_ratio: number }

async function iopsWithoutMigration(image: string, sock: string, seconds: number): Promise<number> {
  const child = spawn(process.execPath, [BIN, 'export', '--image', image, '--listen', `unix:${sock}`, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; if (out.includes('"event":"listening"')) resolve(); });
      child.on('close', (c) => reject(new Error(`flimcd export exited ${String(c)}`)));
    });
    return await measureIops(`unix:${sock}`, seconds);
  } finally {
    child.kill('SIGTERM');
  }
}

export async function measureGuestIo(dir: string, o: { seconds: number; bandwidthBps: number; rttMs: number }): Promise<GuestIoResult> {
  const image = join(dir, 'guest.img');
  // Pre-copy must outlast the fio job: twice its length of data at the link's rate, incompressible
  // (compressible content pre-copied faster than the link's rate and the cut-over ended fio's job).
  const size = Math.ceil(((o.bandwidthBps / 8) * (o.seconds + 3) * 2) / (1 << 20)) << 20;
  await generateImage(image, size, { seed: 11, mix: { zero: 0, duplicate: 0, text: 0 } });
  const alone = await iopsWithoutMigration(image, join(dir, 'export.sock'), o.seconds);
  let migrating = NaN;
  await migrateThroughWan({
    dir, image, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs,
    duringMigration: async (nbd) => { migrating = await measureIops(nbd, o.seconds); },
  });
  return { iops_alone: Math.round(alone), iops_migrating: Math.round(migrating), guest_io_ratio: +(migrating / alone).toFixed(3) };
}
