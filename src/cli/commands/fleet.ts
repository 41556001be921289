/**
 * `flimcd fleet run PLAN`: migrate a group of VMs from this host (their source
 * agents run in this process) to their target agents, through one shared WAN
 * cap; `flimcd fleet status --control ADDR`: the running fleet's table.
 */
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { parseAddress } from '../../util/address.ts';
import { parseDuration } from '../../util/units.ts';
import { log } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { controlRequest } from '../../control/client.ts';
import { readFleetPlan } from '../../fleet/plan.ts';
import { FleetRun } from '../../fleet/fleet-run.ts';
import { formatFleetTable, startFleetControl, type FleetSnapshot } from '../../fleet/fleet-view.ts';
import { addSecurityOptions, securityFromFlags, type SecurityFlags } from '../security-options.ts';
import { onShutdownSignal } from '../signals.ts';
import { ExitCode } from '../exit-codes.ts';
import { simulatedPredictions } from '../fleet-predictions.ts';

interface RunOptions extends SecurityFlags {
  dir: string;
  control?: string;
  json?: boolean;
  interval: string;
}

const PLAN_HELP = `
The plan (JSON, or YAML in the subset README.md describes):

  concurrency: 3          # migrations at once (default 4)
  wan_cap: 100Mbit        # total WAN bandwidth, shared by the VMs' priorities
  order: auto             # auto | shortest-first | deadline | as-listed
  algorithm: flimcd
  block_size: 64KiB
  vms:
    - name: web-1
      image: /var/lib/vms/web-1.img      # or nbd://… / nbd+unix://…
      target: tcp:10.1.0.5:7000          # its target agent (flimcd target --cluster … --replica-address …)
      nbd: unix:/run/web-1.sock          # where the VM reaches its disk (default DIR/NAME.sock)
      priority: 2                        # fair-share weight (default 1)
      deadline: 10m                      # optional

Order "auto": VMs with a deadline first, earliest first; then shortest predicted first; then priority.
Exit 0 when every VM is verified, 3 when one failed verification, 1 when one failed otherwise.

Example:
  flimcd fleet run evacuate.yaml --psk-file /etc/flimcd/link.psk --control unix:/run/flimcd-fleet.ctl`;

/** `flimcd fleet run|status`. */
export function registerFleet(program: Command): void {
  const fleet = program.command('fleet').description('migrate a group of VMs together: shared WAN cap, content sent once, one view');
  addSecurityOptions(fleet.command('run'), 'source')
    .description('Migrate every VM of PLAN from this host to its target agent, at most `concurrency` at once, through the plan\'s shared WAN cap.')
    .argument('<plan>', 'the plan file (YAML subset or JSON)')
    .option('--dir <dir>', 'run directory: the VMs\' NBD sockets when the plan names none, state of NBD-URI images', '.')
    .option('--control <addr>', 'serve GET /status and /metrics here (unix:PATH or a loopback tcp:HOST:PORT)')
    .option('--json', 'print events as JSON lines on stdout (phase changes, reports, the group\'s totals)')
    .option('--interval <duration>', 'how often the table is redrawn', '2s')
    .addHelpText('after', PLAN_HELP)
    .action(async (planPath: string, o: RunOptions) => {
      const plan = readFleetPlan(planPath);
      const security = securityFromFlags(o);
      const intervalMs = parseDuration(o.interval, '--interval');
      if (!(intervalMs >= 100)) throw new UsageError('--interval must be at least 100ms');
      const control = o.control === undefined ? undefined : parseAddress(o.control, '--control');
      mkdirSync(o.dir, { recursive: true });
      const print = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + '\n');
      const predictedS = plan.predict === 'simulator' ? await simulatedPredictions(plan, log) : undefined;
      const run = new FleetRun({ plan, security, dir: o.dir, log, predictedS, onEvent: o.json ? print : undefined });
      const snapshot = (): FleetSnapshot => {
        const rows = run.rows();
        return { rows, totals: run.totals(rows) };
      };
      const server = control ? await startFleetControl(control, snapshot) : undefined;
      onShutdownSignal(() => run.stop());
      const tty = !o.json && process.stdout.isTTY;
      const timer = o.json ? undefined : setInterval(() => process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + formatFleetTable(snapshot()) + (tty ? '' : '\n')), intervalMs);
      try {
        const result = await run.run();
        if (!o.json) process.stdout.write(formatFleetTable(result));
        const failedVerify = result.rows.some((r) => r.report && !r.report.verified);
        process.exitCode = result.ok ? ExitCode.OK : failedVerify ? ExitCode.VERIFY_FAILED : ExitCode.FAILURE;
      } finally {
        if (timer) clearInterval(timer);
        await server?.close();
      }
    });
  fleet.command('status')
    .description('Show a running `flimcd fleet run`: every VM\'s phase, progress, ETA, rate and WAN bytes, and the group\'s totals.')
    .requiredOption('--control <addr>', 'the fleet\'s control endpoint (its --control)')
    .option('--json', 'print the status as one JSON object')
    .option('--timeout <duration>', 'how long to wait for an answer', '5s')
    .action(async (o: { control: string; json?: boolean; timeout: string }) => {
      const addr = parseAddress(o.control, '--control');
      const timeoutMs = parseDuration(o.timeout, '--timeout');
      const s = await controlRequest<FleetSnapshot & { role?: string }>(addr, 'GET', '/status', undefined, { timeoutMs });
      if (s.role !== 'fleet') throw new UsageError(`--control: ${o.control} is not a fleet's control endpoint (it answered as ${s.role ?? 'something else'})`);
      process.stdout.write(o.json ? JSON.stringify(s) + '\n' : formatFleetTable(s));
    });
}
