/**
 * What `--record-trace` costs the guest: fio through `flimcd export` with and
 * without it, on the same image.
 *
 *   npm run -s bench:record-trace [-- --json] [--runs N] [--seconds S] [--size SIZE]
 *
 * Method
 * - One temp dir holds a fully allocated raw image (random bytes). Two
 *   exports of it run for the whole benchmark as their own processes, on Unix
 *   sockets: `plain` (flimcd export) and `recorded` (flimcd export
 *   --record-trace TRACE.zst, the compressed form an operator would use).
 * - Jobs (fio --ioengine=nbd, one connection, time based, 1 s ramp):
 *     randrw4k   4 KiB random, 70 % reads, iodepth 16        (IOPS)
 *     seqread1m  1 MiB sequential reads, iodepth 4            (MB/s)
 *   randrw4k is the recorder's worst case per byte (one line and one digest
 *   per 4 KiB request); seqread1m is its worst case per request (256 digests).
 * - Each run measures both exports back to back, alternating which goes
 *   first, so drift on a shared machine hits both. Results are medians.
 * - headline: `randrw4k`, `seqread1m` = recorded / plain (higher is better;
 *   goal >= 0.95, i.e. the recorder costs the guest under 5 %), and the trace
 *   size and drop count of the recorded export (drops mean the file fell
 *   behind and requests were left out of the trace instead of holding the VM).
 * - CPU: the export process's user+system time (/proc/PID/stat, all its
 *   threads, the recorder's worker included) per request (randrw4k) or per
 *   MB (seqread1m), medians: `cpu_randrw4k`, `cpu_seqread1m` = recorded /
 *   plain. On a machine shared with other work, throughput ratios swing with
 *   the neighbours; CPU per unit of work does much less.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './bench-args.ts';
import { median } from './stats.ts';
import { builtFlimcd } from '../testing/built-cli.ts';

const args = benchArgs('record-trace', `usage: tsx bench/record-trace.ts [--json] [--runs N] [--seconds S] [--size SIZE]
  --runs N       runs per job and export; medians are reported (default 5)
  --seconds S    measured seconds per fio job (default 5)
  --size SIZE    image size (default 256MiB)`, {
  json: { type: 'boolean' },
  runs: { type: 'string' },
  seconds: { type: 'string' },
  size: { type: 'string' },
});
const runs = args.int(args.values.runs, 5, '--runs');
const seconds = args.int(args.values.seconds, 5, '--seconds');
const size = args.size(args.values.size, 256 << 20, '--size');
const BIN = builtFlimcd();

function startExport(image: string, sock: string, extra: string[]): Promise<{ child: ChildProcess; stopped: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'export', '--image', image, '--listen', `unix:${sock}`, '--json', ...extra], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLIMCD_LOG_LEVEL: 'warn' } });
    let out = '';
    const stopped = new Promise<string>((r) => child.on('close', () => r(out)));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('"event":"listening"')) resolve({ child, stopped });
    });
    child.on('error', reject);
    void stopped.then(() => reject(new Error(`flimcd export exited before listening:\n${out}`)));
  });
}

/** User + system CPU seconds of a process so far (all threads). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) in clock ticks; rest[0] is field 3.
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

function fio(sock: string, job: 'randrw4k' | 'seqread1m', dir: string): { rate: number; units: number } {
  const out = join(dir, 'fio.json');
  const spec = job === 'randrw4k' ? ['--rw=randrw', '--rwmixread=70', '--bs=4k', '--iodepth=16', '--norandommap', '--randrepeat=0'] : ['--rw=read', '--bs=1M', '--iodepth=4'];
  spawnSyncOk('fio', [`--name=${job}`, '--ioengine=nbd', `--uri=nbd+unix:///?socket=${sock}`, ...spec, '--time_based', '--ramp_time=1', `--runtime=${seconds}`, '--output-format=json', `--output=${out}`]);
  // fio's JSON, past the nbd engine's "connected to NBD server" chatter.
  const text = readFileSync(out, 'utf8');
  const j = (JSON.parse(text.slice(text.search(/^\{/m), text.lastIndexOf('}') + 1)) as { jobs: Array<{ error: number; read: { iops: number; bw: number }; write?: { iops: number } }> }).jobs[0]!;
  if (j.error) throw new Error(`fio job error ${j.error}`);
  const rate = job === 'randrw4k' ? j.read.iops + (j.write?.iops ?? 0) : (j.read.bw * 1024) / 1e6;
  // Units of work over the whole fio run (ramp included, as the CPU counter sees it): requests or MB.
  return { rate, units: rate * (seconds + 1) };
}

function spawnSyncOk(cmd: string, a: string[]): void {
  const r = spawnSync(cmd, a, { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} exited ${r.status}: ${r.stderr}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-trace-'));
  const kids: ChildProcess[] = [];
  try {
    const image = join(dir, 'vm.img');
    const fd = openSync(image, 'w');
    for (let off = 0; off < size; off += 4 << 20) writeSync(fd, randomBytes(Math.min(4 << 20, size - off)));
    closeSync(fd);
    const trace = join(dir, 'trace.fiu.zst');
    const plain = await startExport(image, join(dir, 'plain.sock'), []);
    const recorded = await startExport(image, join(dir, 'recorded.sock'), ['--record-trace', trace]);
    kids.push(plain.child, recorded.child);
    const jobs = ['randrw4k', 'seqread1m'] as const;
    const samples: Record<string, { plain: number[]; recorded: number[] }> = {};
    const cpu: Record<string, { plain: number[]; recorded: number[] }> = {};
    const pids = { plain: plain.child.pid!, recorded: recorded.child.pid! };
    for (const job of jobs) {
      samples[job] = { plain: [], recorded: [] };
      cpu[job] = { plain: [], recorded: [] };
      for (let i = 0; i < runs; i++) {
        const order = i % 2 ? (['recorded', 'plain'] as const) : (['plain', 'recorded'] as const);
        for (const which of order) {
          const c0 = cpuSeconds(pids[which]);
          const v = fio(join(dir, `${which}.sock`), job, dir);
          const perUnit = ((cpuSeconds(pids[which]) - c0) / v.units) * 1e6;
          samples[job][which].push(v.rate);
          cpu[job][which].push(perUnit);
          if (!args.values.json) process.stderr.write(`  ${job} ${which}: ${v.rate.toFixed(0)}, ${perUnit.toFixed(1)} CPU µs per ${job === 'randrw4k' ? 'request' : 'MB'}\n`);
        }
      }
    }
    recorded.child.kill('SIGTERM');
    const out = await recorded.stopped;
    const ev = JSON.parse(out.split('\n').find((l) => l.includes('"event":"trace"')) ?? '{}') as { recorded?: number; dropped?: number };
    const medians = Object.fromEntries(jobs.map((j) => [j, { plain: median(samples[j]!.plain), recorded: median(samples[j]!.recorded), cpu_us_plain: median(cpu[j]!.plain), cpu_us_recorded: median(cpu[j]!.recorded) }]));
    const headline = {
      randrw4k: medians.randrw4k!.recorded / medians.randrw4k!.plain,
      seqread1m: medians.seqread1m!.recorded / medians.seqread1m!.plain,
      cpu_randrw4k: medians.randrw4k!.cpu_us_recorded / medians.randrw4k!.cpu_us_plain,
      cpu_seqread1m: medians.seqread1m!.cpu_us_recorded / medians.seqread1m!.cpu_us_plain,
      trace_requests: ev.recorded ?? null,
      trace_dropped: ev.dropped ?? null,
      trace_bytes: statSync(trace).size,
    };
    if (args.values.json) process.stdout.write(JSON.stringify({ runs, seconds, image_bytes: size, medians, samples, cpu, headline }) + '\n');
    else {
      process.stdout.write(`fio through flimcd export, with and without --record-trace (${runs} runs of ${seconds} s, medians)\n`);
      process.stdout.write(`  randrw4k  ${medians.randrw4k!.plain.toFixed(0)} vs ${medians.randrw4k!.recorded.toFixed(0)} IOPS: recorded/plain ${headline.randrw4k.toFixed(3)}\n`);
      process.stdout.write(`  seqread1m ${medians.seqread1m!.plain.toFixed(0)} vs ${medians.seqread1m!.recorded.toFixed(0)} MB/s: recorded/plain ${headline.seqread1m.toFixed(3)}\n`);
      process.stdout.write(`  CPU per request (randrw4k) ${medians.randrw4k!.cpu_us_plain.toFixed(1)} vs ${medians.randrw4k!.cpu_us_recorded.toFixed(1)} µs, per MB (seqread1m) ${medians.seqread1m!.cpu_us_plain.toFixed(1)} vs ${medians.seqread1m!.cpu_us_recorded.toFixed(1)} µs\n`);
      process.stdout.write(`  trace: ${headline.trace_requests} requests, ${headline.trace_dropped} dropped, ${headline.trace_bytes} bytes (zstd)\n`);
    }
  } finally {
    for (const k of kids) k.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
