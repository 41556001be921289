/**
 * `flimcd vm migrate`: live-migrates a QEMU VM whose disk a flimcd source agent
 * serves, to a target QEMU whose disk the target agent serves. flimcd moves
 * the disk, QEMU the RAM; the storage cut-over happens at QEMU's switch-over.
 * See src/qemu/vm-migrate.ts for the QMP sequence and failure semantics.
 */
import type { Command } from 'commander';
import { parseAddress } from '../../util/address.ts';
import { parseBitRate, parseDuration, parseSize, formatBytes } from '../../util/units.ts';
import { log } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { ExitCode, exitCodeForSignal } from '../exit-codes.ts';
import { migrateVm, VmMigrationError, type VmMigrationResult, type VmProgress } from '../../qemu/vm-migrate.ts';
import { chsGeometry, nbdBlockdev, NBD_RECONNECT_DELAY_S } from '../../qemu/process.ts';
import { checkImageSpecArg } from '../image-arg.ts';
import { checkDiskEndpoints, type DiskEndpoints } from '../../qemu/disk-set.ts';
import { RAM_START_MODES, type RamStart } from '../../qemu/ram-start.ts';

interface VmMigrateCliOptions {
  sourceQmp: string;
  targetQmp: string;
  sourceControl?: string;
  targetControl?: string;
  disk: string[];
  incoming: string;
  migrateUri?: string;
  ramBandwidth?: string;
  precopyThreshold?: string;
  ramStart: string;
  precopyTimeout: string;
  ramTimeout: string;
  postcopyTimeout: string;
  waitPostcopy: boolean;
  json?: boolean;
}

const HELP = `
The VM's disk must already be served by flimcd on both sides:

  # once: the agents' link credentials, the same file on both hosts (or certificates: flimcd certs --out DIR)
  flimcd certs --psk link.psk
  # datacenter B
  flimcd target --image vm.img --listen tcp:0.0.0.0:7000 --nbd unix:/run/vm-dst.sock --control unix:/run/flimcd-dst.ctl --psk-file link.psk
  # datacenter A: the source agent (pre-copy starts at once; cut-over waits for this command)
  flimcd source --image vm.img --nbd unix:/run/vm.sock --to tcp:dc-b:7000 --manual-cutover --keep-serving --control unix:/run/flimcd-src.ctl \\
      --psk-file link.psk
  # the -blockdev/-device lines with the geometry for this image: flimcd vm qemu-args --disk vm.img --socket unix:/run/vm.sock
  qemu-system-x86_64 ... -blockdev driver=nbd,server.type=unix,server.path=/run/vm.sock,reconnect-delay=30,node-name=d0 \\
      -device virtio-blk-pci,drive=d0,cyls=C,heads=16,secs=63 -qmp unix:/run/vm-src.qmp,server=on,wait=off \\
      -qmp unix:/run/vm-src-operator.qmp,server=on,wait=off
  # datacenter B, once the target agent prints "flimcd target: VM export at … (held until cut-over)"
  # (with --json: the nbd-listening event):
  qemu-system-x86_64 ... (same devices) -blockdev driver=nbd,server.type=unix,server.path=/run/vm-dst.sock,reconnect-delay=30,node-name=d0 \\
      -qmp unix:/run/vm-dst.qmp,server=on,wait=off -incoming defer

  flimcd vm migrate --source-qmp unix:/run/vm-src.qmp --target-qmp unix:/run/vm-dst.qmp \\
      --source-control unix:/run/flimcd-src.ctl --target-control unix:/run/flimcd-dst.ctl --incoming tcp:0.0.0.0:4444 --migrate-uri tcp:dc-b:4444

Several disks: one agent pair per disk (each source agent with --manual-cutover and its
own --control; on a shared link give each its share of --bandwidth), then one --disk
per disk instead of --source-control/--target-control:

  flimcd vm migrate --source-qmp … --target-qmp … --incoming tcp:0.0.0.0:4444 \\
      --disk name=vda,source=unix:/run/vda-src.ctl,target=unix:/run/vda-dst.ctl \\
      --disk name=vdb,source=unix:/run/vdb-src.ctl,target=unix:/run/vdb-dst.ctl

All disks cut over together inside QEMU's switch-over pause (one storage downtime);
a failure of any disk before the VM runs at the target rolls all of them back.

Give virtio-blk an explicit geometry (cyls/heads/secs; \`flimcd vm qemu-args\` computes it):
otherwise the target QEMU reads sector 0 at start-up to guess one, and that read waits
for the cut-over. reconnect-delay=30 lets QEMU ride out a restart of the agent (the guest
sees a stall, not an I/O error).

vm migrate holds each QEMU's QMP monitor while it runs: give the source QEMU a second
-qmp socket (as above) to watch or steer it meanwhile.

Before migrate-continue it checks that the target QEMU's disks are the live target agents'
exports (query-named-block-nodes, and a client on each agent's export); it counts the
guest's I/O errors on both QEMUs (BLOCK_IO_ERROR, query-blockstats); it sets back every
QEMU migration setting it changed (capabilities, max-bandwidth), whatever the outcome;
it warns when the RAM migration does not converge.

Retrying after a rollback: the source agent (--keep-serving) goes on serving the VM and
migrates nothing (flimcd status: phase idle). Start a new target agent (fresh image), then
\`flimcd retry --control SOURCE-CONTROL\`; once the target prints its VM export line, start
a new target QEMU (-incoming defer) and run vm migrate again. Nothing that serves the VM
restarts.

Sequence: pre-copy until the dirty set is small; QEMU's RAM migration with
pause-before-switchover; at the pause the storage cut-over (the guest is stopped,
its I/O drained); migrate-continue; post-copy while the VM runs at the target.

Exit codes: 0 migrated and verified, and the guest saw no I/O error; 1 the guest saw I/O
errors, or failed: before the switch-over the VM keeps running at the source with its disk
there (migration cancelled, agents aborted, QEMU settings restored); after it the VM runs
at the target and the error says so; 2 bad input;
3 the disk did not verify; 130 on SIGINT, 143 on SIGTERM (rolled back when still possible).`;

/** `--disk name=N,source=ADDR,target=ADDR` (name optional: disk0, disk1 … by position). */
export function parseDiskSpec(spec: string, index: number): DiskEndpoints {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq) : '';
    if (!['name', 'source', 'target'].includes(key)) throw new UsageError(`--disk: "${spec}" is not name=NAME,source=ADDR,target=ADDR ("${part}" is not one of them)`);
    if (fields.has(key)) throw new UsageError(`--disk: "${spec}" gives ${key} twice`);
    fields.set(key, part.slice(eq + 1));
  }
  const name = fields.get('name') ?? `disk${index}`;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError(`--disk: name "${name}" must be 1-64 letters, digits, '.', '_' or '-'`);
  const source = fields.get('source');
  const target = fields.get('target');
  if (!source || !target) throw new UsageError(`--disk: "${spec}" needs source=ADDR and target=ADDR (the disk's agents' control endpoints)`);
  return { name, sourceControl: parseAddress(source, `--disk ${name} source`), targetControl: parseAddress(target, `--disk ${name} target`) };
}

/** The report as a human reads it: the result line (totals), then a line per disk when there are several. */
export function formatVmResult(r: VmMigrationResult): string {
  const lines = [resultLine(r)];
  if (r.disks.length > 1) {
    for (const d of r.disks) {
      const n = (k: string) => (typeof d.disk[k] === 'number' ? (d.disk[k]) : null);
      const received = n('receivedBytes');
      lines.push(`  disk ${d.name}: ${verdict(d.verified)}, ${received !== null ? `${formatBytes(received)} received, ` : ''}missing at cut-over ${d.missing_at_cutover ?? '?'} blocks`);
    }
  }
  return lines.join('\n') + '\n';
}

const verdict = (v: boolean | null) => (v === null ? 'still in post-copy' : v ? 'verified' : 'NOT verified');

function progressLine(p: VmProgress): string {
  const d = p.disk;
  const disk = d.progress !== null ? `disk ${(d.progress * 100).toFixed(1)}%${d.remainingBlocks !== null ? ` (${d.remainingBlocks} blocks left)` : ''}` : `disk ${d.phase}`;
  const each = p.disks.length > 1 ? ` (${p.disks.map((x) => `${x.name} ${x.progress !== null ? `${(x.progress * 100).toFixed(1)}%` : x.phase}`).join(', ')})` : '';
  const ram = p.ram ? ` | RAM ${p.ram.status} ${formatBytes(p.ram.transferred)} of ${formatBytes(p.ram.total)}` : '';
  return `[${(p.elapsedMs / 1000).toFixed(1)} s] ${p.stage}: ${disk}${each}${ram}`;
}

/** The human result line: guest I/O errors come first, and never next to a bare "disk verified". */
export function resultLine(r: VmMigrationResult): string {
  const e = r.guest_io_errors;
  const disks = r.disks.length > 1 ? `${r.disks.length} disks` : 'disk';
  return (
    `flimcd vm migrate: the VM runs at the target; total ${r.time_total_s.toFixed(1)} s (pre-copy ${r.time_precopy_s.toFixed(1)} s, RAM ${r.time_ram_s.toFixed(1)} s, post-copy ${r.time_postcopy_s.toFixed(1)} s), ` +
    `downtime ${r.downtime_ms} ms (storage cut-over ${r.storage_cutover_ms} ms), RAM ${formatBytes(r.ram.transferred_bytes)} sent, ` +
    (e.total > 0
      ? `FAILED: the guest saw ${e.total} I/O error${e.total === 1 ? '' : 's'} (${e.failed_reads} failed reads, ${e.failed_writes} failed writes, ${e.events} BLOCK_IO_ERROR events); flimcd's copy of the ${disks}: ${verdict(r.verified)}`
      : `${disks} ${verdict(r.verified)}, no guest I/O error`)
  );
}

/** 0 only when the guest saw no I/O error and the disk verified (or is still in post-copy with --no-wait-postcopy). */
export function exitCodeForResult(r: VmMigrationResult): number {
  if (r.guest_io_errors.total > 0) return ExitCode.FAILURE;
  if (r.verified === false) return ExitCode.VERIFY_FAILED;
  return ExitCode.OK;
}

export function registerVm(program: Command): void {
  const vm = program.command('vm').description('Whole-VM operations with QEMU (QMP).');
  vm.command('migrate')
    .description('Live-migrate a QEMU VM: flimcd moves its disk, QEMU its RAM; the storage cut-over happens at QEMU\'s switch-over.')
    .requiredOption('--source-qmp <addr>', 'the source QEMU\'s QMP socket: unix:PATH or tcp:HOST:PORT')
    .requiredOption('--target-qmp <addr>', 'the target QEMU\'s QMP socket (QEMU started with -incoming defer)')
    .option('--source-control <addr>', 'the source agent\'s control endpoint (its --control); one disk')
    .option('--target-control <addr>', 'the target agent\'s control endpoint; one disk')
    .option('--disk <spec>', 'one disk\'s agents, name=NAME,source=ADDR,target=ADDR (control endpoints); repeat for each disk', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .requiredOption('--incoming <uri>', 'where the target QEMU listens for the RAM stream, e.g. tcp:0.0.0.0:4444')
    .option('--migrate-uri <uri>', 'where the source QEMU sends the RAM stream (default: --incoming)')
    .option('--ram-bandwidth <rate>', 'QEMU\'s RAM migration limit, e.g. 1Gbit (QEMU 7.2\'s default is 128 MiB/s); set back afterwards')
    .option('--precopy-threshold <size>', 'start the RAM migration once the disk\'s dirty set is at most this (default 8MiB or 1 s of link)')
    .option('--ram-start <when>', 'when the RAM migration starts: converged (after the disks\' pre-copy; RAM and disks share the link) or overlap (so that both end together: for a RAM stream on its own link)', 'converged')
    .option('--precopy-timeout <duration>', 'start the RAM migration anyway after this long; post-copy moves the rest', '30m')
    .option('--ram-timeout <duration>', 'roll back when QEMU\'s RAM migration has not reached the switch-over after this long', '30m')
    .option('--postcopy-timeout <duration>', 'give up waiting for the post-copy end after this long', '2h')
    .option('--no-wait-postcopy', 'return once the VM runs at the target (post-copy carries on in the agents)')
    .option('--json', 'print progress events and the result as JSON lines')
    .addHelpText('after', HELP)
    .action(async (o: VmMigrateCliOptions) => {
      const sourceQmp = parseAddress(o.sourceQmp, '--source-qmp');
      const targetQmp = parseAddress(o.targetQmp, '--target-qmp');
      if (o.disk.length && (o.sourceControl || o.targetControl)) throw new UsageError('give --disk (one per disk) or --source-control and --target-control (one disk), not both');
      if (!o.disk.length && !(o.sourceControl && o.targetControl)) throw new UsageError('give --source-control and --target-control (one disk), or --disk for each disk');
      const disks = o.disk.length
        ? o.disk.map((spec, i) => parseDiskSpec(spec, i))
        : [{ name: 'disk0', sourceControl: parseAddress(o.sourceControl!, '--source-control'), targetControl: parseAddress(o.targetControl!, '--target-control') }];
      checkDiskEndpoints(disks);
      for (const [name, uri] of [['--incoming', o.incoming], ['--migrate-uri', o.migrateUri]] as const) {
        if (uri !== undefined && !/^(tcp|unix|exec|fd|rdma):/.test(uri)) throw new UsageError(`${name}: "${uri}" is not a QEMU migration URI (e.g. tcp:0.0.0.0:4444, unix:/run/mig.sock)`);
      }
      const ramMaxBandwidth = o.ramBandwidth ? parseBitRate(o.ramBandwidth, '--ram-bandwidth') / 8 : undefined;
      const precopyThresholdBytes = o.precopyThreshold ? parseSize(o.precopyThreshold, '--precopy-threshold') : undefined;
      if (!(RAM_START_MODES as readonly string[]).includes(o.ramStart)) throw new UsageError(`--ram-start must be one of ${RAM_START_MODES.join(', ')}, got "${o.ramStart}"`);
      const ramStart = o.ramStart as RamStart;
      const precopyTimeoutMs = parseDuration(o.precopyTimeout, '--precopy-timeout');
      const ramTimeoutMs = parseDuration(o.ramTimeout, '--ram-timeout');
      if (!(ramTimeoutMs > 0)) throw new UsageError('--ram-timeout must be more than 0');
      const postcopyTimeoutMs = o.waitPostcopy ? parseDuration(o.postcopyTimeout, '--postcopy-timeout') : 0;
      if (o.waitPostcopy && !(postcopyTimeoutMs > 0)) throw new UsageError('--postcopy-timeout must be more than 0');
      const ac = new AbortController();
      let interrupted: NodeJS.Signals | undefined;
      const onSignal = (sig: NodeJS.Signals) => {
        interrupted = sig;
        ac.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let lastStage = '';
      let lastPrint = 0;
      try {
        const r = await migrateVm({
          sourceQmp, targetQmp, disks,
          incomingUri: o.incoming, migrateUri: o.migrateUri, ramMaxBandwidth, precopyThresholdBytes, ramStart, precopyTimeoutMs, ramTimeoutMs, postcopyTimeoutMs,
          signal: ac.signal, log,
          onProgress: (p) => {
            const now = Date.now();
            if (p.stage === lastStage && now - lastPrint < 1000) return;
            lastStage = p.stage;
            lastPrint = now;
            if (o.json) process.stdout.write(JSON.stringify({ event: 'progress', ...p }) + '\n');
            else process.stderr.write(progressLine(p) + '\n');
          },
        });
        if (o.json) process.stdout.write(JSON.stringify({ event: 'result', ...r }) + '\n');
        else process.stdout.write(formatVmResult(r));
        process.exitCode = exitCodeForResult(r);
      } catch (e) {
        if (o.json) process.stdout.write(JSON.stringify({ event: 'failed', error: (e as Error).message, code: (e as { code?: string }).code, vm_at: e instanceof VmMigrationError ? e.vmAt : null }) + '\n');
        if (interrupted) {
          process.stderr.write(`flimcd: ${(e as Error).message}\n`);
          process.exitCode = exitCodeForSignal(interrupted);
          return;
        }
        throw e;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  vm.command('qemu-args')
    .description('Print the QEMU -blockdev/-device lines that attach a VM to a flimcd agent\'s export, with the explicit CHS geometry for the disk.')
    .requiredOption('--disk <image>', 'the VM\'s disk image (its size gives the geometry)')
    .option('--socket <addr>', 'the agent\'s --nbd address: unix:PATH or tcp:HOST:PORT', 'unix:/tmp/flimcd-source.sock')
    .option('--name <name>', 'the agent\'s NBD export name (--name), if any')
    .option('--node-name <name>', 'QEMU block node name', 'd0')
    .option('--reconnect-delay <duration>', 'how long QEMU holds the guest\'s I/O while reconnecting to a restarted agent', `${NBD_RECONNECT_DELAY_S}s`)
    .addHelpText('after', '\nThe same lines serve the source QEMU (the source agent\'s --nbd) and the target QEMU (the target agent\'s --nbd, with -incoming defer):\nboth sides must use the same geometry.\n\nExample:\n  flimcd vm qemu-args --disk vm.img --socket unix:/run/vm.sock')
    .action((o: { disk: string; socket: string; name?: string; nodeName: string; reconnectDelay: string }) => {
      const size = checkImageSpecArg(o.disk, undefined, { flag: '--disk' });
      if (size === undefined) throw new UsageError(`--disk: ${o.disk} is not an image file`);
      const addr = parseAddress(o.socket, '--socket');
      if (!/^[A-Za-z][\w-]*$/.test(o.nodeName)) throw new UsageError(`--node-name: "${o.nodeName}" is not a QEMU node name (a letter, then letters, digits, - or _)`);
      const delayMs = parseDuration(o.reconnectDelay, '--reconnect-delay');
      if (delayMs % 1000 !== 0) throw new UsageError(`--reconnect-delay: QEMU takes whole seconds, not ${o.reconnectDelay}`);
      process.stdout.write(`-blockdev ${nbdBlockdev(addr, o.nodeName, o.name || undefined, delayMs / 1000)}\n-device virtio-blk-pci,drive=${o.nodeName},${chsGeometry(size)}\n`);
    });
}
