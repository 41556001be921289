/**
 * Reproduces the recorded guest traces of testing/traces/ (issue 18):
 *
 *   npm run -s traces:record -- image [--work DIR]
 *       builds the ext4 disk from this machine's tree (image.ts) and prints its digests;
 *   npm run -s traces:record -- record --job walk|targz|backup|spool|mixed [--secs 630] [--work DIR]
 *       boots the TCG guest (Debian cloud kernel, busybox initramfs, guest-jobs.ts)
 *       on a copy of that disk served by `flimcd export --record-trace`, runs the
 *       job for --secs of guest time and writes testing/traces/JOB.fiu.zst and JOB.json;
 *   npm run -s traces:record -- summary [--update-docs]
 *       what each checked-in trace holds (trace-summary.ts), as a markdown table;
 *       --update-docs writes it into docs/design.md between the traces markers.
 *
 * A recording takes its --secs in wall time (TCG guest time follows the host
 * clock) plus about a minute; run at most two at once on a 2-core machine.
 * The recorder's own zstd stream is recompressed with `zstd -19 --long=27`:
 * a job that re-reads the same files repeats the same digests minutes apart.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildInitramfs, ensureGuestKernel, REPO_ROOT } from '../qemu/guest.ts';
import { QemuGuest } from '../../src/qemu/process.ts';
import { buildTraceImage, fileSha256, IMAGE_BYTES, MKE2FS_ARGS, TREE_SOURCES, FIXED_TIME, type TraceImage } from './image.ts';
import { TRACE_INIT, TRACE_JOBS, traceCmdline, type TraceJob } from './guest-jobs.ts';
import { summarizeTrace, summaryTable, type TraceMeta } from './trace-summary.ts';

export const TRACES_DIR = join(REPO_ROOT, 'testing', 'traces');
const GUEST_MEM_MIB = 128;

const { values: v, positionals } = parseArgs({
  allowPositionals: true,
  options: { job: { type: 'string' }, secs: { type: 'string', default: '630' }, work: { type: 'string', default: join(REPO_ROOT, '.cache', 'traces') }, 'update-docs': { type: 'boolean', default: false } },
  strict: true,
});
const cmd = positionals[0];

function usage(msg: string): never {
  process.stderr.write(`traces:record: ${msg}\n`);
  process.exit(2);
}

function imageMetaPath(work: string): string {
  return join(work, 'trace-disk.json');
}

/** The disk, built once per work directory. */
async function ensureImage(work: string): Promise<TraceImage> {
  mkdirSync(work, { recursive: true });
  const meta = imageMetaPath(work);
  if (existsSync(meta)) {
    const img = JSON.parse(readFileSync(meta, 'utf8')) as TraceImage;
    if (existsSync(img.path)) return img;
  }
  const img = await buildTraceImage(work);
  writeFileSync(meta, JSON.stringify(img, null, 2) + '\n');
  return img;
}

function flimcdSrc(): string {
  return join(REPO_ROOT, 'scripts', 'flimcd-src.mjs');
}

async function record(job: TraceJob, secs: number, work: string): Promise<void> {
  const img = await ensureImage(work);
  const dir = join(work, job);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, 'disk.img');
  copyFileSync(img.path, disk);
  const kernel = ensureGuestKernel();
  const initrd = join(dir, 'initrd.cpio');
  buildInitramfs(initrd, kernel, { init: TRACE_INIT });
  const sock = join(dir, 'disk.sock');
  const rawTrace = join(dir, 'recorder.fiu.zst');
  const exp = spawn(process.execPath, [flimcdSrc(), 'export', '--image', disk, '--listen', `unix:${sock}`, '--record-trace', rawTrace, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: Record<string, unknown>[] = [];
  let buf = '';
  const listening = new Promise<void>((resolve, reject) => {
    exp.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        try {
          const e = JSON.parse(l) as Record<string, unknown>;
          events.push(e);
          if (e.event === 'listening') resolve();
        } catch {
          process.stderr.write(`export: ${l}\n`);
        }
      }
    });
    exp.once('exit', (code) => reject(new Error(`flimcd export exited ${code} before listening`)));
  });
  await listening;
  const exited = new Promise<number | null>((r) => exp.once('exit', (code) => r(code)));
  const started = Date.now();
  process.stdout.write(`[${job}] export listening; starting the guest\n`);
  const guest = await QemuGuest.start({ name: `trace-${job}`, dir, kernel: kernel.vmlinuz, initrd, append: traceCmdline(job, secs), memMiB: GUEST_MEM_MIB, disk: { addr: { kind: 'unix', path: sock } }, diskBytes: IMAGE_BYTES });
  const progress: string[] = [];
  let seen = 0;
  const drain = () => {
    for (; seen < guest.serial.lines.length; seen++) {
      const l = guest.serial.lines[seen]!;
      const at = l.indexOf('FLIMCD-TRACE');
      if (at >= 0) {
        // From the marker on: the console's first line starts with the terminal's reset codes.
        const line = l.slice(at).trim();
        progress.push(line);
        process.stdout.write(`[${job} ${Math.round((Date.now() - started) / 1000)} s] ${line}\n`);
      }
    }
  };
  const tick = setInterval(drain, 1000);
  try {
    const end = await guest.serial.waitFor(/FLIMCD-TRACE (?:.*DONE|FAIL.*)/, (secs + 900) * 1000);
    if (end[0].includes('FAIL')) throw new Error(`guest: ${end[0]}`);
  } finally {
    clearInterval(tick);
    drain();
    await guest.stop();
    exp.kill('SIGINT');
    await exited;
  }
  const stat = events.find((e) => e.event === 'trace') ?? {};
  const out = join(TRACES_DIR, `${job}.fiu.zst`);
  // Recompressed: the recorder's stream is fast zstd with a small window.
  const z = spawnSync('sh', ['-c', `zstd -dcq "${rawTrace}" | zstd -19 --long=27 -T1 -qfo "${out}"`], { encoding: 'utf8' });
  if (z.status !== 0) throw new Error(`recompressing the trace failed: ${z.stderr}`);
  const meta: TraceMeta = {
    job,
    guest_secs: secs,
    guest_mem_mib: GUEST_MEM_MIB,
    kernel: kernel.package,
    recorder: { recorded: Number(stat.recorded ?? 0), dropped: Number(stat.dropped ?? 0), truncated: Number(stat.truncated ?? 0) },
    image: { bytes: img.bytes, sha256: img.sha256, tree_sha256: img.treeSha256, tree: TREE_SOURCES.map((s) => `${s.from} -> /tree/${s.name}`), mke2fs: MKE2FS_ARGS.join(' '), fake_time: FIXED_TIME },
    console: progress,
    summary: summarizeTrace(out),
  };
  writeFileSync(join(TRACES_DIR, `${job}.json`), JSON.stringify(meta, null, 2) + '\n');
  process.stdout.write(`${job}: ${out} (${(statSync(out).size / 1048576).toFixed(2)} MiB), ${JSON.stringify(meta.summary)}\n`);
}

const DOCS_BEGIN = '<!-- traces:begin (npm run -s traces:record -- summary --update-docs) -->';
const DOCS_END = '<!-- traces:end -->';

function summary(updateDocs: boolean): void {
  const metas = readdirSync(TRACES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(TRACES_DIR, f), 'utf8')) as TraceMeta);
  const table = summaryTable(metas);
  process.stdout.write(table + '\n');
  if (!updateDocs) return;
  const docs = join(REPO_ROOT, 'docs', 'design.md');
  const text = readFileSync(docs, 'utf8');
  const a = text.indexOf(DOCS_BEGIN);
  const b = text.indexOf(DOCS_END);
  if (a < 0 || b < a) usage(`docs/design.md has no "${DOCS_BEGIN}" ... "${DOCS_END}" section`);
  writeFileSync(docs, text.slice(0, a + DOCS_BEGIN.length) + '\n' + table + '\n' + text.slice(b));
}

if (cmd === 'image') {
  const img = await ensureImage(v.work);
  process.stdout.write(JSON.stringify({ ...img, sha256_check: await fileSha256(img.path) }, null, 2) + '\n');
} else if (cmd === 'record') {
  const job = v.job as TraceJob;
  if (!TRACE_JOBS.includes(job)) usage(`--job must be one of ${TRACE_JOBS.join(', ')} (got "${v.job ?? ''}")`);
  const secs = Number(v.secs);
  if (!Number.isInteger(secs) || secs < 10) usage(`--secs must be a whole number of seconds, at least 10 (got "${v.secs}")`);
  await record(job, secs, v.work);
  // Nothing is left to wait for; a stray handle of the guest's console must not keep the script.
  process.exit(0);
} else if (cmd === 'summary') {
  summary(v['update-docs']);
} else {
  usage('the command is one of: image, record, summary');
}
