import type { Command } from 'commander';
import { SourceAgent } from '../../migrate/source-agent.ts';
import { TargetAgent } from '../../migrate/target-agent.ts';
import { parseAddress, formatAddress, nbdUri, type Address } from '../../util/address.ts';
import { parseBitRate, parseBlockSize, parseDuration } from '../../util/units.ts';
import { parseAlgorithm, resolveFeatures } from '../../policy/algorithm.ts';
import { log } from '../../util/log.ts';
import { ExitCode, exitCodeForSignal } from '../exit-codes.ts';
import { formatReport } from '../report-format.ts';
import { onShutdownSignal } from '../signals.ts';
import { attachControl, type ControllableAgent } from './agent-control.ts';
import { createProgress } from '../progress.ts';
import { readPrediction } from '../../sim/plan-file.ts';
import { addSecurityOptions, securityFromFlags, type SecurityFlags } from '../security-options.ts';
import { checkImageArg, checkImageArgIfExists } from '../image-arg.ts';
import type { MigrationReport } from '../../migrate/report.ts';
import { addRuntimeOptions, runtimeFromFlags, type RuntimeFlags } from '../runtime-options.ts';

interface SourceOptions extends SecurityFlags, RuntimeFlags {
  image: string;
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
  json?: boolean;
}

interface TargetOptions extends SecurityFlags, RuntimeFlags {
  image: string;
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

const emit = (json: boolean | undefined, event: Record<string, unknown>, human: string) => {
  if (json) process.stdout.write(JSON.stringify(event) + '\n');
  else process.stdout.write(human + '\n');
};

export function registerAgents(program: Command): void {
  addRuntimeOptions(addSecurityOptions(program
    .command('source'), 'target'))
    .description('Serve the running VM\'s disk over NBD and migrate it live to a target agent.')
    .requiredOption('--image <file>', 'the VM\'s raw disk image')
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
    .option('--keep-serving', 'when the migration fails or is aborted while the VM\'s disk is still here, keep serving it until SIGTERM (for `flimcd vm migrate`)')
    .option('--plan <file>', 'a plan from `flimcd plan --out FILE`: status shows its prediction for this algorithm as the ETA')
    .option('--json', 'print events and the final report as JSON lines')
    .addHelpText('after', '\nExamples:\n  flimcd source --image vm.img --nbd unix:/run/vm.sock --to tcp:dc-b.example:7000 --bandwidth 100Mbit \\\n      --tls-ca ca.crt --tls-cert source.crt --tls-key source.key\n  flimcd source --image vm.img --to tcp:10.0.0.2:7000 --psk-file link.psk --algorithm precopy --control unix:/run/flimcd.ctl --json\n\nA lost link is reconnected with backoff; a restarted agent (same arguments) resumes from its state dir.\nExit codes: 0 migrated and verified, 1 failure (the VM keeps running here), 2 bad input, 3 verification failed,\n4 link down longer than --link-timeout (restart with the same arguments to resume).')
    .action(async (o: SourceOptions) => {
      const imageSize = checkImageArg(o.image, { writable: true });
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
      const progress = createProgress({ json: o.json, role: 'source', formatReport: (r) => formatReport(r as unknown as MigrationReport) });
      let agentRef: SourceAgent | undefined;
      const prediction = o.plan ? readPrediction(o.plan, algorithm, imageSize) : undefined;
      const runtime = runtimeFromFlags(o);
      // Handlers go in before anything listens: a signal in any phase (start-up, dialling, handshake) ends the agent at once.
      let signalled: NodeJS.Signals | undefined;
      let stop!: () => void;
      const stopped = new Promise<void>((r) => (stop = r));
      onShutdownSignal(async (sig) => {
        signalled = sig;
        agentRef?.abort(`interrupted by ${sig}`);
        stop();
      });
      const agent = await SourceAgent.start({
        image: o.image, security, nbd, exportName: o.name, to, algorithm, features, blockSize, bandwidthBps, manualCutover: o.manualCutover, log, prediction, stateDir: o.stateDir, linkTimeoutMs, runtime,
        onPhase: () => { if (agentRef) progress.update(agentRef.status()); },
      });
      agentRef = agent;
      if (signalled) agent.abort(`interrupted by ${signalled}`);
      // The control endpoint is up before "listening" is printed: whoever waits for that line may ask for status at once.
      const control = controlAddress ? await attachControlOrClose(controlAddress, 'source', agent) : undefined;
      emit(o.json, { event: 'listening', nbd: formatAddress(agent.nbdAddress), uri: nbdUri(agent.nbdAddress, o.name) }, `flimcd source: serving the VM at ${nbdUri(agent.nbdAddress, o.name)}; migrating to ${formatAddress(to)}`);
      progress.watch(() => agent.status());
      let interrupted = false;
      try {
        const report = await agent.migrate();
        progress.done(report as unknown as Record<string, unknown>);
        if (!report.verified) process.exitCode = ExitCode.VERIFY_FAILED;
      } catch (e) {
        if (signalled) {
          interrupted = true;
        } else if (o.keepServing && agent.gate.status === 'open') {
          progress.stop();
          const msg = (e as Error).message;
          emit(o.json, { event: 'serving', migrated: false, error: msg }, `flimcd source: ${msg}; the VM's disk stays here, still serving it; stop with SIGTERM`);
          await stopped;
        }
        if (!interrupted) throw e;
      } finally {
        progress.stop();
        await control?.close();
        await agent.close();
        await runtime.work.close();
      }
      if (interrupted && signalled) {
        emit(o.json, { event: 'interrupted', signal: signalled, state: agent.statePath }, `flimcd source: stopped by ${signalled}; the migration state stays in ${agent.statePath}: restart with the same arguments to resume`);
        process.exitCode = exitCodeForSignal(signalled);
      }
    });

  addRuntimeOptions(addSecurityOptions(program
    .command('target'), 'source'))
    .description('Receive a live migration and serve the VM\'s disk at the destination over NBD (post-copy from cut-over on).')
    .requiredOption('--image <file>', 'where the disk image is written (created if missing; an existing file must have the source\'s size)')
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
      checkImageArgIfExists(o.image, { writable: true });
      const listen = parseAddress(o.listen, '--listen');
      const nbd = parseAddress(o.nbd, '--nbd');
      const security = securityFromFlags(o);
      const fetchTimeoutMs = parseDuration(o.fetchTimeout, '--fetch-timeout');
      const progress = createProgress({ json: o.json, role: 'target' });
      const runtime = runtimeFromFlags(o);
      let agentRef: TargetAgent | undefined;
      const agent = new TargetAgent({
        image: o.image, security, listen, nbd, exportName: o.name, prefetch: o.prefetch, log, indexDir: o.index, stateDir: o.stateDir, fetchTimeoutMs, runtime,
        onPhase: () => { if (agentRef) progress.update(agentRef.status()); },
        onNbdListening: (a) => emit(o.json, { event: 'nbd-listening', nbd: formatAddress(a), uri: nbdUri(a, o.name) }, `flimcd target: VM export at ${nbdUri(a, o.name)} (held until cut-over)`),
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
      const bound = await agent.listen();
      const control = controlAddress ? await attachControlOrClose(controlAddress, 'target', agent) : undefined;
      progress.watch(() => agent.status());
      emit(o.json, { event: 'listening', listen: formatAddress(bound) }, `flimcd target: waiting for the source at ${formatAddress(bound)}`);
      try {
        const result = await Promise.race([agent.result(), stopped.then(() => undefined)]);
        progress.stop();
        if (result) {
          emit(o.json, { event: 'result', verified: result.verified, merkle_root: result.root, ...result.stats }, `flimcd target: migration ${result.verified ? 'verified' : 'NOT verified'} (root ${result.root.slice(0, 16)}…)`);
          if (!result.verified) process.exitCode = ExitCode.VERIFY_FAILED;
          if (!o.exitWhenDone) {
            emit(o.json, { event: 'serving' }, 'flimcd target: still serving the VM; stop with SIGTERM');
            await stopped;
          }
        }
      } finally {
        progress.stop();
        await control?.close();
        await agent.close();
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
