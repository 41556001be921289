import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { SourceAgent } from '../../migrate/source-agent.ts';
import { TargetAgent } from '../../migrate/target-agent.ts';
import { parseAddress, formatAddress, nbdUri, type Address } from '../../util/address.ts';
import { parseBitRate, parseBlockSize, parseDuration } from '../../util/units.ts';
import { parseAlgorithm, resolveFeatures } from '../../policy/algorithm.ts';
import { log, logSink } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { ExitCode, exitCodeForSignal } from '../exit-codes.ts';
import { formatReport } from '../report-format.ts';
import { onShutdownSignal } from '../signals.ts';
import { CONFIRM_WINDOW_MS, isAfterCutover, SourceStopPolicy } from '../source-stop.ts';
import { ErrorCode, FlimcdError } from '../../errors.ts';
import { attachControl, type ControllableAgent } from './agent-control.ts';
import { createProgress, type Progress } from '../progress.ts';
import { addLogOptions } from '../log-options.ts';
import { readPrediction } from '../../sim/plan-file.ts';
import { closeTrace, openTrace } from '../record-trace.ts';
import { addSecurityOptions, securityFromFlags, type SecurityFlags } from '../security-options.ts';
import { checkImageSpecArg } from '../image-arg.ts';
import { parseImageFormat, parseImageSpec } from '../../image/image-spec.ts';
import type { MigrationReport } from '../../migrate/report.ts';
import { addClusterOptions, clusterFromFlags, openFleetContent, type ClusterFlags } from '../cluster-options.ts';
import { addRuntimeOptions, runtimeFromFlags, type RuntimeFlags } from '../runtime-options.ts';

interface SourceOptions extends SecurityFlags, RuntimeFlags {
  image: string;
  format?: string;
  storageDaemon?: string;
  nbd: string;
  name: string;
  to: string;
  algorithm: string;
  bandwidth?: string;
  blockSize: string;
  control?: string;
  manualCutover?: boolean;
  dedup: boolean;
  compress: boolean;
  /** false with --no-prefetch / --no-hot-order. */
  prefetch: boolean;
  hotOrder: boolean;
  keepServing?: boolean;
  plan?: string;
  stateDir?: string;
  linkTimeout: string;
  recordTrace?: string;
  json?: boolean;
}

interface TargetOptions extends SecurityFlags, ClusterFlags, RuntimeFlags {
  image: string;
  format?: string;
  backing?: string;
  backingFormat?: string;
  storageDaemon?: string;
  listen: string;
  nbd: string;
  name: string;
  control?: string;
  exitWhenDone?: boolean;
  index?: string;
  prefetch: boolean;
  stateDir?: string;
  fetchTimeout: string;
  json?: boolean;
}

/** An event on stdout: JSON with --json, else a human line (above the progress bar when both share a terminal). */
const emit = (json: boolean | undefined, event: Record<string, unknown>, human: string, progress: Progress) => {
  if (json) process.stdout.write(JSON.stringify(event) + '\n');
  else progress.print(human);
};

export function registerAgents(program: Command): void {
  addRuntimeOptions(addSecurityOptions(addLogOptions(program
    .command('source')), 'target'))
    .description('Serve the running VM\'s disk over NBD and migrate it live to a target agent.')
    .requiredOption('--image <image>', 'the VM\'s disk: a raw file, a block device, a qcow2 file (--format qcow2), or an NBD URI (nbd://HOST:PORT/NAME, nbd+unix:///NAME?socket=PATH; needs --state-dir)')
    .option('--format <fmt>', 'raw or qcow2 (never probed); qcow2 is opened through a supervised qemu-storage-daemon', 'raw')
    .option('--storage-daemon <binary>', 'qemu-storage-daemon binary for qcow2 images (default: on PATH)')
    .requiredOption('--to <addr>', 'target agent link address, tcp:HOST:PORT')
    .option('--nbd <addr>', 'where the VM reaches its disk: unix:PATH or tcp:HOST:PORT', 'unix:/tmp/flimcd-source.sock')
    .option('--name <name>', 'NBD export name', '')
    .option('--algorithm <name>', 'precopy, postcopy, hybrid or flimcd', 'flimcd')
    .option('--bandwidth <rate>', 'link bandwidth hint for the cut-over policy until measured, e.g. 100Mbit')
    .option('--block-size <size>', 'unit of tracking and transfer (4KiB-1MiB)', '64KiB')
    .option('--control <addr>', 'control endpoint (unix:PATH or tcp:127.0.0.1:PORT) for status, cutover, abort and /metrics')
    .option('--manual-cutover', 'keep pre-copying until `flimcd cutover` instead of the automatic policy')
    .option('--no-dedup', 'flimcd: send every block as data, never as a content id (ablation)')
    .option('--no-compress', 'flimcd: no zstd on data frames (ablation)')
    .option('--no-prefetch', 'no prefetch around post-copy misses (ablation; flimcd has it on)')
    .option('--no-hot-order', 'transfer in block order instead of cold-first pre-copy and read-hot-first push (ablation; flimcd has it on)')
    .option('--state-dir <dir>', 'durable migration state, for resuming after a crash (default IMAGE.flimcd)')
    .option('--link-timeout <duration>', 'after a link loss, keep reconnecting this long before giving up (exit code 4; restart to resume)', '10min')
    .option('--keep-serving', 'when the migration fails or is aborted while the VM\'s disk is still here, keep serving it until SIGTERM, even after the VM disconnects, migrating nothing (status: phase idle) until `flimcd retry` starts a new migration (for `flimcd vm migrate`)')
    .option('--plan <file>', 'a plan from `flimcd plan --out FILE`: status shows its prediction for this algorithm as the ETA')
    .option('--record-trace <file>', 'record the VM\'s requests here until the cut-over, as an FIU trace (flimcd simulate --workload trace:FILE); .zst or .gz compresses')
    .option('--json', 'print events and the final report as JSON lines')
    .addHelpText('after', '\nExamples:\n  flimcd source --image vm.img --nbd unix:/run/vm.sock --to tcp:dc-b.example:7000 --bandwidth 100Mbit \\\n      --tls-ca ca.crt --tls-cert source.crt --tls-key source.key\n  flimcd source --image vm.img --to tcp:10.0.0.2:7000 --psk-file link.psk --algorithm precopy --control unix:/run/flimcd.ctl --json\n\nA lost link is reconnected with backoff; a restarted agent (same arguments) resumes from its state dir.\nExit codes: 0 migrated and verified, 1 failure or `flimcd abort` (the VM keeps running here), 2 bad input, 3 verification failed,\n4 link down longer than --link-timeout (restart with the same arguments to resume), 130 SIGINT, 143 SIGTERM.\n\nStopping: before the cut-over a SIGINT, SIGTERM or `flimcd abort` ends the migration; the VM\'s disk stays here,\nserved until the VM disconnects (another signal exits at once). After the cut-over a signal means "finish\npost-copy, then exit" (exit 0 or 3 as usual); a second within 10 s asks for confirmation, a third exits at once\nwith the state kept for a resume.')
    .action(async (o: SourceOptions) => {
      const imageSize = checkImageSpecArg(o.image, o.format, { writable: true });
      const format = parseImageFormat(o.format);
      const nbd = parseAddress(o.nbd, '--nbd');
      const to = parseAddress(o.to, '--to');
      const security = securityFromFlags(o);
      const algorithm = parseAlgorithm(o.algorithm);
      const blockSize = parseBlockSize(o.blockSize);
      const bandwidthBps = o.bandwidth ? parseBitRate(o.bandwidth, '--bandwidth') : undefined;
      const linkTimeoutMs = parseDuration(o.linkTimeout, '--link-timeout');
      const off = (on: boolean) => (on === false ? false : undefined);
      const features = resolveFeatures(algorithm, { dedup: off(o.dedup), compress: off(o.compress), prefetch: off(o.prefetch), hotOrder: off(o.hotOrder) });
      const controlAddress = o.control ? parseAddress(o.control, '--control') : undefined;
      const progress = createProgress({ json: o.json, role: 'source', logSink, log, formatReport: (r) => formatReport(r as unknown as MigrationReport) });
      let agentRef: SourceAgent | undefined;
      const showPhase = () => { if (agentRef) progress.update(agentRef.status()); };
      if (o.plan && imageSize === undefined) throw new UsageError('--plan: not with an NBD URI as --image (the plan is checked against the image size)');
      const prediction = o.plan && imageSize !== undefined ? readPrediction(o.plan, algorithm, imageSize) : undefined;
      const runtime = runtimeFromFlags(o);
      // Handlers go in before anything listens: a signal in any phase (start-up, dialling, handshake) is honoured at once.
      // Before the cut-over it ends the migration (the VM keeps its disk here); after it, post-copy finishes first.
      let signalled: NodeJS.Signals | undefined;
      let finishing: NodeJS.Signals | undefined;
      let stop!: () => void;
      const stopped = new Promise<void>((r) => (stop = r));
      let controlRef: { close(): Promise<void> } | undefined;
      const policy = new SourceStopPolicy();
      const window = `${CONFIRM_WINDOW_MS / 1000} s`;
      const exitAtOnce = async (sig: NodeJS.Signals, afterCutover: boolean) => {
        process.stderr.write(afterCutover
          ? `flimcd: third ${sig} within ${window}: exiting before post-copy finished; the VM at the target waits for its missing blocks (reads fail after the target's --fetch-timeout): restart with the same arguments to resume (state in ${agentRef?.statePath ?? 'IMAGE.flimcd'})\n`
          : `flimcd: second ${sig}, exiting now\n`);
        // The VM's and the control socket files go; a close that hangs does not hold the exit up.
        setTimeout(() => process.exit(exitCodeForSignal(sig)), 1000);
        await Promise.allSettled([controlRef?.close(), agentRef?.close()]);
        process.exit(exitCodeForSignal(sig));
      };
      const onSignal = (sig: NodeJS.Signals) => {
        const st = agentRef?.status();
        const phase = (st?.phase as string | undefined) ?? 'starting';
        const left = { phase, remainingBlocks: st?.remainingBlocks };
        switch (policy.onSignal(phase, Date.now())) {
          case 'abort':
            signalled = sig;
            // A signal stops this process, not the migration: the state stays for a restart to resume.
            void agentRef?.abort(`interrupted by ${sig}`, { resumable: true });
            stop();
            return;
          case 'finish':
            finishing = sig;
            log.warn({ signal: sig, ...left }, `${sig} after the cut-over: the VM runs at the target and reads its missing blocks from here; finishing post-copy, then exiting (a second signal within ${window} asks for confirmation)`);
            return;
          case 'confirm':
            log.warn({ signal: sig, ...left }, `second ${sig} within ${window}: post-copy has not finished, and stopping now leaves the VM at the target waiting for the blocks only this source has (its reads fail after the target's --fetch-timeout). To stop anyway (the state stays for a resume), send a third signal within ${window}, or SIGKILL`);
            return;
          case 'exit':
            void exitAtOnce(sig, isAfterCutover(phase));
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const trace = o.recordTrace ? await openTrace(o.recordTrace) : undefined;
      const agent = await SourceAgent.start({
        vmDisk: trace?.wrap,
        image: o.image, format, storageDaemon: o.storageDaemon, security, nbd, exportName: o.name, to, algorithm, features, blockSize, bandwidthBps, manualCutover: o.manualCutover, log, prediction, stateDir: o.stateDir, linkTimeoutMs, runtime,
        // The cut-over's status after its own work: a status costs ms that would otherwise be downtime.
        onPhase: (p) => (p === 'cutover' ? setImmediate(showPhase) : showPhase()),
      }).catch(async (e: unknown) => {
        await trace?.recorder.close().catch(() => {});
        throw e;
      });
      agentRef = agent;
      if (signalled) void agent.abort(`interrupted by ${signalled}`, { resumable: true });
      // The control endpoint is up before "listening" is printed: whoever waits for that line may ask for status at once.
      const control = controlAddress ? await attachControlOrClose(controlAddress, 'source', agent) : undefined;
      controlRef = control;
      emit(o.json, { event: 'listening', nbd: formatAddress(agent.nbdAddress), uri: nbdUri(agent.nbdAddress, o.name) }, `flimcd source: serving the VM at ${nbdUri(agent.nbdAddress, o.name)}; migrating to ${formatAddress(to)}`, progress);
      progress.watch(() => agent.status());
      let interrupted = false;
      try {
        // One migration, or, with --keep-serving, one after another: after one ends with the VM's disk here,
        // `POST /retry` on the control endpoint starts the next without restarting what serves the VM.
        for (let attempt = 1; ; attempt++) {
          try {
            const report = await agent.migrate();
            progress.done(report as unknown as Record<string, unknown>);
            if (finishing) log.info({ signal: finishing }, `post-copy finished, as ${finishing} asked: exiting`);
            if (!report.verified) process.exitCode = ExitCode.VERIFY_FAILED;
            break;
          } catch (e) {
            if (o.keepServing && !signalled && agent.gate.status === 'open') {
              // The progress display carries on: it shows phase idle, then the next migration.
              const msg = (e as Error).message;
              emit(o.json, { event: 'serving', migrated: false, error: msg, retry: controlAddress ? 'POST /retry' : null }, `flimcd source: ${msg}; the VM's disk stays here, still serving it; nothing migrates now${controlAddress ? ` (flimcd retry --control ${formatAddress(controlAddress)} starts a new migration)` : ''}; stop with SIGTERM`, progress);
              const next = await Promise.race([stopped.then(() => 'stop' as const), agent.whenRetried().then(() => 'retry' as const)]);
              if (next === 'retry' && !signalled) {
                emit(o.json, { event: 'retry', attempt: attempt + 1 }, `flimcd source: starting a new migration to ${formatAddress(to)} (attempt ${attempt + 1})`, progress);
                continue;
              }
            } else if ((signalled || (e instanceof FlimcdError && e.code === ErrorCode.ABORTED)) && agent.gate.status === 'open' && agent.nbd.connectionCount > 0) {
              // Stopped or aborted before the cut-over: the migration is over, but the VM still uses its disk here.
              progress.stop();
              const why = signalled ? `stopped by ${signalled}` : (e as Error).message;
              emit(o.json, { event: 'serving', migrated: false, until: 'vm-disconnects', error: why }, `flimcd source: migration ${why}; the VM's disk stays here: serving it until the VM disconnects (${signalled ? 'another' : 'a'} SIGINT or SIGTERM exits at once)`, progress);
              await (signalled ? agent.nbd.whenIdle() : Promise.race([agent.nbd.whenIdle(), stopped]));
            }
            if (signalled) {
              interrupted = true;
              break;
            }
            throw e;
          }
        }
      } finally {
        progress.stop();
        await control?.close();
        await agent.close();
        if (trace) await closeTrace(trace, o.recordTrace!, o.json);
        await runtime.work.close();
      }
      if (interrupted && signalled) {
        const resumable = !agent.abortRecorded;
        emit(o.json, { event: 'interrupted', signal: signalled, state: agent.statePath, resumable }, resumable
          ? `flimcd source: stopped by ${signalled}; the migration state stays in ${agent.statePath}: restart with the same arguments to resume`
          : `flimcd source: stopped by ${signalled}; the last migration was aborted (recorded in ${agent.statePath}): a restart starts a new migration`, progress);
        process.exitCode = exitCodeForSignal(signalled);
      }
    });

  addRuntimeOptions(addClusterOptions(addSecurityOptions(addLogOptions(program
    .command('target')), 'source'), 'blocks this agent receives and records in --index are published as held here'))
    .description('Receive a live migration and serve the VM\'s disk at the destination over NBD (post-copy from cut-over on).')
    .requiredOption('--image <image>', 'where the disk is written: a raw file (created if missing; an existing one must have the source\'s size), a block device, a qcow2 file (--format qcow2), or an NBD URI (needs --state-dir)')
    .option('--format <fmt>', 'raw or qcow2 (never probed); qcow2 is written through a supervised qemu-storage-daemon', 'raw')
    .option('--backing <file>', 'create --image as a new qcow2 overlay on this base (this host\'s copy of the source\'s backing chain): blocks the source takes from an identical base are not sent')
    .option('--backing-format <fmt>', 'the format of --backing: raw or qcow2', 'qcow2')
    .option('--storage-daemon <binary>', 'qemu-storage-daemon binary for qcow2 images (default: on PATH)')
    .option('--listen <addr>', 'link address the source agent connects to', 'tcp:0.0.0.0:7000')
    .option('--nbd <addr>', 'where the VM reaches its disk once the migration starts', 'unix:/tmp/flimcd-target.sock')
    .option('--name <name>', 'NBD export name', '')
    .option('--control <addr>', 'control endpoint (unix:PATH or tcp:127.0.0.1:PORT) for status, abort and /metrics')
    .option('--exit-when-done', 'exit after the migration completes instead of serving the VM on')
    .option('--no-prefetch', 'do not prefetch around post-copy misses even if the source asks (ablation)')
    .option('--state-dir <dir>', 'durable migration state (presence map), for resuming after a crash (default IMAGE.flimcd)')
    .option('--fetch-timeout <duration>', 'post-copy: a VM read waits this long for a missing block (e.g. while the link reconnects), then fails with EIO', '60s')
    .option('--index <dir>', 'replica index (see `flimcd index`): blocks found there are copied locally instead of crossing the link')
    .option('--json', 'print events and the result as JSON lines')
    .addHelpText('after', '\nExamples:\n  flimcd target --image /var/lib/vm/vm.img --listen tcp:0.0.0.0:7000 --nbd unix:/run/vm.sock \\\n      --tls-ca ca.crt --tls-cert target.crt --tls-key target.key\n\nAfter the migration the target keeps serving the VM (its disk lives here now) until SIGTERM,\nwhich lets in-flight requests finish and flushes first.')
    .action(async (o: TargetOptions) => {
      const format = parseImageFormat(o.format);
      const spec = parseImageSpec(o.image, format, '--image', o.format !== undefined);
      const backing = o.backing ? { file: o.backing, format: parseImageFormat(o.backingFormat, '--backing-format') } : undefined;
      if (backing) {
        if (spec.kind !== 'file') throw new UsageError(`--backing: creates a qcow2 overlay file; --image ${o.image} is not a file`);
        checkImageSpecArg(backing.file, backing.format, { flag: '--backing' });
        if (existsSync(o.image)) checkImageSpecArg(o.image, 'qcow2', { writable: true });
      } else if (spec.kind === 'file' && existsSync(o.image)) checkImageSpecArg(o.image, format, { writable: true });
      if (spec.kind === 'nbd' && !o.stateDir) throw new UsageError(`--state-dir: needed when --image is an NBD URI (${o.image}): there is no image file to keep the migration state next to`);
      const listen = parseAddress(o.listen, '--listen');
      const nbd = parseAddress(o.nbd, '--nbd');
      const security = securityFromFlags(o);
      const fetchTimeoutMs = parseDuration(o.fetchTimeout, '--fetch-timeout');
      const cluster = clusterFromFlags(o);
      if (cluster?.replicaAddress && !o.index) throw new UsageError('--replica-address needs --index: the replica server serves what the index records');
      const progress = createProgress({ json: o.json, role: 'target', logSink, log });
      const runtime = runtimeFromFlags(o);
      // Sibling hosts' content: looked up after this host's own, before the WAN.
      const fleet = cluster ? openFleetContent(cluster, security, log, runtime.content.format) : undefined;
      let agentRef: TargetAgent | undefined;
      const showPhase = () => { if (agentRef) progress.update(agentRef.status()); };
      const agent = new TargetAgent({
        image: o.image, format, backing, storageDaemon: o.storageDaemon, security, listen, nbd, exportName: o.name, prefetch: o.prefetch, log, indexDir: o.index, stateDir: o.stateDir, fetchTimeoutMs, remote: fleet?.remote, runtime,
        // The cut-over's status after its own work: a status costs ms that would otherwise be downtime.
        onPhase: (p) => (p === 'cutover' ? setImmediate(showPhase) : showPhase()),
        onNbdListening: (a) => emit(o.json, { event: 'nbd-listening', nbd: formatAddress(a), uri: nbdUri(a, o.name) }, `flimcd target: VM export at ${nbdUri(a, o.name)} (held until cut-over)`, progress),
      });
      agentRef = agent;
      const controlAddress = o.control ? parseAddress(o.control, '--control') : undefined;
      let signalled: NodeJS.Signals | undefined;
      let stop!: () => void;
      const stopped = new Promise<void>((r) => (stop = r));
      onShutdownSignal(async (sig) => {
        signalled = sig;
        stop();
      });
      const bound = await agent.listen().catch(async (e: unknown) => {
        await fleet?.close();
        throw e;
      });
      const control = controlAddress ? await attachControlOrClose(controlAddress, 'target', agent) : undefined;
      progress.watch(() => agent.status());
      emit(o.json, { event: 'listening', listen: formatAddress(bound) }, `flimcd target: waiting for the source at ${formatAddress(bound)}`, progress);
      try {
        const result = await Promise.race([agent.result(), stopped.then(() => undefined)]);
        progress.stop();
        if (result) {
          emit(o.json, { event: 'result', verified: result.verified, merkle_root: result.root, ...result.stats }, `flimcd target: migration ${result.verified ? 'verified' : 'NOT verified'} (root ${result.root.slice(0, 16)}…)`, progress);
          if (!result.verified) process.exitCode = ExitCode.VERIFY_FAILED;
          if (!o.exitWhenDone) {
            emit(o.json, { event: 'serving' }, 'flimcd target: still serving the VM; stop with SIGTERM', progress);
            await stopped;
          }
        }
      } finally {
        progress.stop();
        await control?.close();
        await agent.close();
        // After the agent: its last received blocks are recorded, then published.
        await fleet?.close();
        await runtime.work.close();
      }
      // Stopped by a signal, as the README's exit-code table says, whether it was serving the VM or still waiting.
      if (signalled && !process.exitCode) process.exitCode = exitCodeForSignal(signalled);
    });
}

/**
 * The agent's control endpoint, or a start-up error: an address that cannot be
 * listened on stops the agent (closing what it opened) instead of leaving it to
 * run without control.
 */
async function attachControlOrClose(address: Address, role: 'source' | 'target', agent: ControllableAgent & { close(): Promise<void> }): Promise<{ close(): Promise<void> }> {
  try {
    return await attachControl(address, role, agent);
  } catch (e) {
    await agent.close();
    throw e;
  }
}
