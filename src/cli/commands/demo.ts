import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FileDisk } from '../../block/file.ts';
import { StatsDisk } from '../../block/filters/stats.ts';
import { NbdServer } from '../../nbd/server.ts';
import { nbdUri } from '../../util/address.ts';
import { parseSize, formatBytes, formatDuration } from '../../util/units.ts';
import { generateImage } from '../../workload/image-gen.ts';
import { Prng } from '../../workload/prng.ts';
import { FlimcdError, UsageError } from '../../errors.ts';
import { ExitCode } from '../exit-codes.ts';

interface DemoOptions {
  size: string;
  seed: string;
  json?: boolean;
  keep?: boolean;
}

/** Peer tools the demo drives; /usr/bin first so nbdsh-style python lookups find Debian's modules. */
const PEER_ENV = { ...process.env, PATH: `/usr/bin:/usr/sbin:/bin:${process.env.PATH ?? ''}` };

function runTool(cmd: string, args: string[]): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: PEER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new FlimcdError(`${cmd} is not installed (the demo drives real NBD clients: apt-get install qemu-utils libnbd-bin)`, 'FLIMCD_ERR_MISSING_TOOL') : e));
    child.on('close', (code) => {
      if (code === 0) resolve({ ms: performance.now() - t0, stdout });
      else reject(new FlimcdError(`${cmd} exited ${code}: ${stderr.trim() || stdout.trim()}`, 'FLIMCD_ERR_PEER_FAILED'));
    });
  });
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 20 }).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Serve a generated, realistic disk image over flimcd\'s NBD server and drive real clients (nbdinfo, nbdcopy, qemu-io, qemu-img) against it, ending in a verified report.')
    .option('--size <size>', 'image size', '1GiB')
    .option('--seed <n>', 'content seed', '1')
    .option('--json', 'print the report as JSON')
    .option('--keep', 'keep the work directory')
    .action(async (opts: DemoOptions) => {
      const size = parseSize(opts.size, '--size');
      if (size < 16 * 1024 * 1024) throw new UsageError('--size must be at least 16MiB');
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed)) throw new UsageError(`--seed: "${opts.seed}" is not an integer`);
      const say = (s: string) => { if (!opts.json) process.stdout.write(s + '\n'); };
      const dir = mkdtempSync(join(tmpdir(), 'flimcd-demo-'));
      const img = join(dir, 'vm.img');
      const copy = join(dir, 'copy.img');
      const server = { s: undefined as NbdServer | undefined };
      try {
        say(`flimcd demo: generating a ${formatBytes(size)} disk image with realistic content…`);
        const t0 = performance.now();
        const stats = await generateImage(img, size, { seed });
        const genMs = performance.now() - t0;
        const disk = new StatsDisk(await FileDisk.open(img, {}));
        server.s = new NbdServer({ exports: [{ name: 'vm', description: 'flimcd demo disk', disk }] });
        const addr = await server.s.listen({ kind: 'unix', path: join(dir, 'vm.sock') });
        const uri = nbdUri(addr, 'vm');
        say(`serving it at ${uri}`);

        const map = JSON.parse((await runTool('nbdinfo', ['--map', '--json', uri])).stdout) as Array<{ length: number; type: number }>;
        const dataBytes = map.filter((m) => m.type === 0).reduce((s, m) => s + m.length, 0);
        say(`nbdinfo --map: ${formatBytes(dataBytes)} data, ${formatBytes(size - dataBytes)} holes`);

        const copyRun = await runTool('nbdcopy', ['--request-size=1048576', uri, copy]);
        say(`nbdcopy export → file: ${formatDuration(copyRun.ms)}`);

        // A write workload from QEMU's own client: patterns at random offsets, then read back and verified.
        const rng = new Prng(seed + 1);
        const writes: string[] = [];
        const reads: string[] = [];
        const blocks = Math.floor(size / 65536);
        const used = new Set<number>();
        while (writes.length < 200) {
          const b = rng.int(blocks);
          if (used.has(b)) continue;
          used.add(b);
          const pat = 1 + rng.int(254);
          writes.push(`write -P ${pat} ${b * 65536} 64k`);
          reads.push(`read -P ${pat} ${b * 65536} 64k`);
        }
        const ioRun = await runTool('qemu-io', ['-f', 'raw', uri, ...[...writes, 'flush', ...reads].flatMap((c) => ['-c', c])]);
        if (/fail/i.test(ioRun.stdout)) throw new FlimcdError(`qemu-io verification failed:\n${ioRun.stdout}`, 'FLIMCD_ERR_VERIFY');
        say(`qemu-io: 200 × 64 KiB pattern writes read back and verified (${formatDuration(ioRun.ms)})`);

        const copy2 = await runTool('nbdcopy', ['--request-size=1048576', uri, copy]);
        const cmp = await runTool('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', uri, copy]);
        await disk.flush();
        const [a, b] = await Promise.all([sha256File(img), sha256File(copy)]);
        const verified = a === b;
        const s = disk.snapshot();
        const report = {
          image_bytes: size,
          data_bytes: dataBytes,
          content: stats,
          generate_ms: Math.round(genMs),
          nbdcopy_ms: Math.round(copyRun.ms),
          nbdcopy_mib_per_s: +(size / 1048576 / (copyRun.ms / 1000)).toFixed(1),
          recopy_ms: Math.round(copy2.ms),
          qemu_img_compare_ms: Math.round(cmp.ms),
          server_ops: s,
          sha256: a,
          verified,
        };
        if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
        else {
          const rows: Array<[string, string]> = [
            ['image', `${formatBytes(size)} (${formatBytes(dataBytes)} data; blocks: ${stats.textBlocks} text, ${stats.randomBlocks} random, ${stats.duplicateBlocks} duplicate, ${stats.zeroBlocks} hole)`],
            ['nbdcopy export → file', `${formatDuration(copyRun.ms)} (${report.nbdcopy_mib_per_s} MiB/s)`],
            ['qemu-io writes verified', '200 × 64 KiB'],
            ['re-copy + qemu-img compare', `${formatDuration(copy2.ms)} + ${formatDuration(cmp.ms)}`],
            ['server reads / writes', `${s.read.count} ops ${formatBytes(s.read.bytes)} / ${s.write.count} ops ${formatBytes(s.write.bytes)}`],
            ['sha256 image = copy', a.slice(0, 16) + '…'],
            ['verified', String(verified)],
          ];
          const w = Math.max(...rows.map((r) => r[0].length));
          say('');
          for (const [k, v] of rows) say(`  ${k.padEnd(w)}  ${v}`);
        }
        if (!verified) process.exitCode = ExitCode.VERIFY_FAILED;
      } finally {
        await server.s?.close().catch(() => {});
        if (!opts.keep) rmSync(dir, { recursive: true, force: true });
        else say(`work directory kept: ${dir}`);
      }
    });
}
