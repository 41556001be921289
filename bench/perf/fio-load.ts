/**
 * The VM's workload for bench:perf: fio through an NBD export (the nbd engine), as a guest would
 * drive its disk. `moderateLoad` follows the `moderate` profile's shape (src/workload/profiles.ts:
 * 8 KiB random requests, 70 % reads, Zipf-popular areas) at its request rate for the link, 133
 * requests a second per 100 Mbit/s; `measureIops` runs an unthrottled 4 KiB random job and returns
 * its IOPS. Not product code.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFio } from '../nbd.ts';

/** The `moderate` profile's request rate at 100 Mbit/s (profiles.ts' table: 93.1 reads + 39.9 writes a second). */
const MODERATE_IOPS_PER_100MBIT = 133;

const uriOf = (nbd: string) => `nbd+unix:///?socket=${nbd.replace(/^unix:/, '')}`;

/** Runs fio until `stop` settles (or it fails: a cut-over shuts the source's export). */
export async function moderateLoad(nbd: string, linkBps: number, stop: Promise<void>): Promise<void> {
  const iops = Math.max(10, Math.round((MODERATE_IOPS_PER_100MBIT * linkBps) / 100e6));
  const fio = spawn('fio', ['--name=moderate', '--ioengine=nbd', `--uri=${uriOf(nbd)}`, '--rw=randrw', '--rwmixread=70', '--bs=8k', '--iodepth=4',
    '--random_distribution=zipf:1.1', `--rate_iops=${Math.round(iops * 0.7)},${Math.round(iops * 0.3)}`, '--time_based', '--runtime=3600', '--output-format=json'], { stdio: 'ignore' });
  const exited = new Promise((r) => fio.on('close', r));
  await Promise.race([stop, exited]);
  fio.kill('SIGTERM');
  await exited;
}

/** IOPS of a 4 KiB random read/write job (70 % reads, queue depth 8) through the export, for `seconds`. */
export async function measureIops(nbd: string, seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-perf-fio-'));
  try {
    const out = join(dir, 'fio.json');
    const fio = spawn('fio', ['--name=guest', '--ioengine=nbd', `--uri=${uriOf(nbd)}`, '--rw=randrw', '--rwmixread=70', '--bs=4k', '--iodepth=8',
      '--norandommap', '--randrepeat=0', '--time_based', '--ramp_time=1', `--runtime=${seconds}`, '--output-format=json', `--output=${out}`], { stdio: 'ignore' });
    const code = await new Promise((r) => fio.on('close', r));
    if (code !== 0) throw new Error(`fio exited ${String(code)}`);
    const job = parseFio(readFileSync(out, 'utf8')).jobs[0]!;
    return job.read.iops + (job as unknown as { write: { iops: number } }).write.iops;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
