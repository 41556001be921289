import type { Command } from 'commander';
import { ReadOnlyDisk } from '../../block/filters/read-only.ts';
import type { Disk } from '../../block/disk.ts';
import { NbdServer } from '../../nbd/server.ts';
import { parseAddress, formatAddress, nbdUri } from '../../util/address.ts';
import { formatBytes } from '../../util/units.ts';
import { log } from '../../util/log.ts';
import { onShutdownSignal } from '../signals.ts';
import { exitCodeForSignal } from '../exit-codes.ts';
import { checkImageSpecArg } from '../image-arg.ts';
import { openImage } from '../../image/open-image.ts';
import { StateDir } from '../../migrate/state-dir.ts';
import { parseImageFormat, parseImageSpec } from '../../image/image-spec.ts';
import { addLogOptions } from '../log-options.ts';
import { closeTrace, openTrace } from '../record-trace.ts';

interface ExportOptions {
  image: string;
  format?: string;
  storageDaemon?: string;
  listen: string;
  name: string;
  description?: string;
  readOnly?: boolean;
  recordTrace?: string;
  json?: boolean;
}

export function registerExport(program: Command): void {
  addLogOptions(program
    .command('export'))
    .description('Serve a disk image over NBD (fixed newstyle, structured replies, base:allocation).')
    .requiredOption('--image <image>', 'image to serve: a raw file, a block device, a qcow2 file (--format qcow2) or an NBD URI')
    .option('--format <fmt>', 'raw or qcow2 (never probed)', 'raw')
    .option('--storage-daemon <binary>', 'qemu-storage-daemon binary for qcow2 images (default: on PATH)')
    .option('--listen <addr>', 'unix:PATH or tcp:HOST:PORT', 'tcp:127.0.0.1:10809')
    .option('--name <name>', 'export name (the empty default name also reaches it)', '')
    .option('--description <text>', 'export description shown by nbdinfo --list')
    .option('--read-only', 'refuse writes, trims and zeroes with EPERM')
    .option('--record-trace <file>', 'record the served requests as an FIU trace (flimcd simulate --workload trace:FILE); .zst or .gz compresses')
    .option('--json', 'print machine-readable events on stdout')
    .addHelpText('after', '\nExamples:\n  flimcd export --image vm.img --listen unix:/tmp/vm.sock\n  flimcd export --image vm.img --listen unix:/tmp/vm.sock --record-trace vm-trace.fiu.zst\n  flimcd export --image base.img --listen tcp:127.0.0.1:10809 --name base --read-only\n  qemu-io -f raw nbd+unix:///?socket=/tmp/vm.sock -c "read -P 0 0 4k"')
    .action(async (opts: ExportOptions) => {
      const addr = parseAddress(opts.listen, '--listen');
      checkImageSpecArg(opts.image, opts.format, { writable: !opts.readOnly });
      const spec = parseImageSpec(opts.image, parseImageFormat(opts.format));
      // A qcow2 file's storage daemon keeps its socket and record in IMAGE.flimcd/, as the agents do, so the next export reaps one a killed flimcd left.
      const socketDir = spec.kind === 'file' ? StateDir.forImage(spec.path).path : undefined;
      const opened = await openImage({ spec, writable: !opts.readOnly, storageDaemon: opts.storageDaemon, log, socketDir });
      let disk: Disk = opened.disk;
      if (opts.readOnly) disk = new ReadOnlyDisk(disk);
      const recorder = opts.recordTrace ? await openTrace(opts.recordTrace) : undefined;
      if (recorder) disk = recorder.wrap(disk);
      const server = new NbdServer({ exports: [{ name: opts.name, description: opts.description ?? opts.image, disk }] });
      // Signal handlers go in before the ready line: a supervisor may signal as soon as it reads it.
      let stop!: (signal: NodeJS.Signals) => void;
      const stopped = new Promise<NodeJS.Signals>((r) => (stop = r));
      onShutdownSignal(async (signal) => stop(signal));
      const bound = await server.listen(addr);
      const uri = nbdUri(bound, opts.name);
      if (opts.json) {
        process.stdout.write(JSON.stringify({ event: 'listening', address: formatAddress(bound), uri, image: opts.image, size: disk.size, readOnly: !!opts.readOnly }) + '\n');
      } else {
        process.stdout.write(`flimcd: serving ${opts.image} (${formatBytes(disk.size)}${opts.readOnly ? ', read-only' : ''}) at ${uri}\n`);
      }
      const signal = await stopped;
      log.info({ signal }, 'shutting down: finishing in-flight requests');
      await server.close();
      await disk.flush().catch(() => {});
      await opened.close();
      if (recorder) await closeTrace(recorder, opts.recordTrace!, opts.json);
      if (opts.json) process.stdout.write(JSON.stringify({ event: 'stopped', signal }) + '\n');
      // Stopped by a signal, as the README's exit-code table says: a supervisor tells it from a clean end.
      process.exitCode = exitCodeForSignal(signal);
    });
}
