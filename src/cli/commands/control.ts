/**
 * `flimcd status`, `flimcd cutover`, `flimcd retry`, `flimcd abort`: talk to a running agent's
 * control endpoint (src/control/server.ts) given with `--control ADDR`.
 */
import type { Command } from 'commander';
import { controlRequest, ControlResponseError, ControlUnreachableError } from '../../control/client.ts';
import type { AgentStatus } from '../../control/types.ts';
import { parseAddress, formatAddress, type Address } from '../../util/address.ts';
import { parseDuration } from '../../util/units.ts';
import { ErrorCode, FlimcdError, UsageError } from '../../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { formatStatus, statusLine } from '../status-format.ts';

interface CommonOptions {
  control: string;
  json?: boolean;
  timeout: string;
}

const CONTROL_HELP = 'the agent\'s control endpoint: unix:PATH or tcp:HOST:PORT (its --control)';
const TIMEOUT_HELP = 'how long to wait for the agent to answer';
const MIN_WATCH_MS = 100;

function common(o: CommonOptions): { addr: Address; timeoutMs: number } {
  const addr = parseAddress(o.control, '--control');
  const timeoutMs = parseDuration(o.timeout, '--timeout');
  if (!(timeoutMs > 0)) throw new UsageError('--timeout must be more than 0');
  return { addr, timeoutMs };
}

/** A refusal from the agent becomes an error with the agent's own words (exit 1); an answer no agent gives says so. */
function refusal(addr: Address): (e: unknown) => never {
  return (e: unknown) => {
    if (e instanceof ControlResponseError && typeof e.body === 'string') throw notAnAgent(addr, `HTTP ${e.status} and a body that is not JSON`);
    if (e instanceof ControlResponseError) throw new FlimcdError(e.message, e.code);
    if (e instanceof ControlUnreachableError && e.systemCode?.startsWith('HPE_')) throw notAnAgent(addr, `something that is not HTTP (${e.systemCode})`);
    throw e;
  };
}

function notAnAgent(addr: Address, answer: string): FlimcdError {
  return new FlimcdError(`${formatAddress(addr)} is not a flimcd agent's control endpoint: it answered with ${answer}; check --control`, ErrorCode.NOT_AN_AGENT);
}

/** Every agent's status is a JSON object with its role and phase; a web page or another API's JSON is not. */
function agentStatus(addr: Address, v: unknown): AgentStatus {
  const s = v as Partial<AgentStatus> | null;
  if (typeof s === 'object' && s !== null && typeof s.role === 'string' && typeof s.phase === 'string') return s as AgentStatus;
  throw notAnAgent(addr, typeof v === 'string' ? `a page of ${v.length} characters, not a status` : 'JSON without a role and a phase');
}

/** Another agent's answer to cutover or abort is a JSON object; anything else is another server. */
function agentAnswer<T>(addr: Address, v: T): T {
  if (typeof v === 'object' && v !== null) return v;
  throw notAnAgent(addr, 'a page, not a JSON answer');
}

/** What the agent's phase after an abort means, in words. */
function afterAbort(phase: string | undefined, addr: Address): string {
  if (phase === 'idle') return 'it is idle now: nothing migrates, and the VM\'s disk is served at the source';
  if (phase === 'aborting') return `it is still winding down (phase aborting): flimcd status --control ${formatAddress(addr)} shows idle once it is over`;
  return `it is in phase ${phase ?? '?'} now`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

async function watchStatus(addr: Address, timeoutMs: number, intervalMs: number, json: boolean): Promise<number> {
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const tty = !json && process.stdout.isTTY === true;
  let drawnLines = 0;
  let last: AgentStatus | undefined;
  try {
    while (!stop.signal.aborted) {
      let s: AgentStatus;
      try {
        s = agentStatus(addr, await controlRequest<unknown>(addr, 'GET', '/status', undefined, { timeoutMs }).catch(refusal(addr)));
      } catch (e) {
        if (last && e instanceof ControlUnreachableError) {
          // The agent exits when its migration ends; say what we last saw.
          if (last.phase === 'done') return ExitCode.OK;
          throw new FlimcdError(`the agent at ${formatAddress(addr)} stopped answering during phase ${last.phase} (${e.message})`, e.code);
        }
        throw e;
      }
      last = s;
      if (json) {
        process.stdout.write(JSON.stringify(s) + '\n');
      } else if (tty) {
        const text = formatStatus(s);
        // Redraw in place: up over the previous block, clear to the end of the screen.
        process.stdout.write((drawnLines ? `\x1b[${drawnLines}A\x1b[J` : '') + text);
        drawnLines = text.split('\n').length - 1;
      } else {
        process.stdout.write(`${new Date().toISOString()} ${statusLine(s)}\n`);
      }
      if (s.phase === 'done') return ExitCode.OK;
      // idle: the source's migration ended without moving the VM (it keeps serving it, --keep-serving).
      if (s.phase === 'failed' || s.phase === 'idle') return ExitCode.FAILURE;
      await sleep(intervalMs, stop.signal);
    }
    return ExitCode.INTERRUPTED;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

export function registerControl(program: Command): void {
  program
    .command('status')
    .description('Show a running agent\'s migration status: phase, progress, remaining, rates, ETA, wire bytes, misses.')
    .requiredOption('--control <addr>', CONTROL_HELP)
    .option('--json', 'print the status as JSON (one object per line with --watch)')
    .option('--watch [interval]', 'refresh every interval (default 1s) until the migration is done or failed, or Ctrl-C')
    .option('--timeout <duration>', TIMEOUT_HELP, '5s')
    .addHelpText(
      'after',
      `
Exit codes: 0 status read (with --watch: the migration finished), 1 agent unreachable
(with --watch: the migration failed or the agent went away), 2 bad input, 130 Ctrl-C during --watch.

Examples:
  flimcd status --control unix:/run/flimcd-source.ctl
  flimcd status --control tcp:127.0.0.1:7070 --json | jq .progress
  flimcd status --control unix:/run/flimcd-source.ctl --watch
  flimcd status --control unix:/run/flimcd-target.ctl --watch 5s --json > status.ndjson`,
    )
    .action(async (o: CommonOptions & { watch?: boolean | string }) => {
      const { addr, timeoutMs } = common(o);
      if (o.watch !== undefined) {
        const intervalMs = typeof o.watch === 'string' ? parseDuration(o.watch, '--watch') : 1000;
        if (intervalMs < MIN_WATCH_MS) throw new UsageError(`--watch: the interval must be at least ${MIN_WATCH_MS} ms`);
        process.exitCode = await watchStatus(addr, timeoutMs, intervalMs, !!o.json);
        return;
      }
      const s = agentStatus(addr, await controlRequest<unknown>(addr, 'GET', '/status', undefined, { timeoutMs }).catch(refusal(addr)));
      process.stdout.write(o.json ? JSON.stringify(s) + '\n' : formatStatus(s));
    });

  program
    .command('cutover')
    .description('Ask a running source agent to cut over now: stop the VM\'s I/O at the source and continue in post-copy at the target.')
    .requiredOption('--control <addr>', CONTROL_HELP)
    .option('--json', 'print the agent\'s answer as JSON')
    .option('--timeout <duration>', TIMEOUT_HELP, '5s')
    .addHelpText(
      'after',
      `
Only the source agent cuts over, and only before cut-over has begun (phase starting or precopy);
otherwise the agent refuses and this command exits 1 with its reason.

Exit codes: 0 accepted, 1 refused or agent unreachable, 2 bad input.

Examples:
  flimcd cutover --control unix:/run/flimcd-source.ctl
  flimcd cutover --control tcp:127.0.0.1:7070 && flimcd status --control tcp:127.0.0.1:7070 --watch`,
    )
    .action(async (o: CommonOptions) => {
      const { addr, timeoutMs } = common(o);
      const r = agentAnswer(addr, await controlRequest<{ accepted: boolean; phase?: string }>(addr, 'POST', '/cutover', {}, { timeoutMs }).catch(refusal(addr)));
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `flimcd: cut-over accepted by the agent at ${formatAddress(addr)} (it was in phase ${r.phase ?? '?'})\n`);
    });

  program
    .command('retry')
    .description('Start a new migration on a source agent whose last one ended (aborted, or rolled back by `flimcd vm migrate`) while it kept serving the VM (--keep-serving): a new session, nothing that serves the VM restarts.')
    .requiredOption('--control <addr>', CONTROL_HELP)
    .option('--json', 'print the agent\'s answer as JSON')
    .option('--timeout <duration>', TIMEOUT_HELP, '5s')
    .addHelpText(
      'after',
      `
Only a source agent in phase idle (flimcd status says so) starts over; it dials its --to
again, so start the new target agent first. A running migration, a target agent, or a
source whose VM already moved refuse, and this command exits 1 with the reason.

Exit codes: 0 accepted, 1 refused or agent unreachable, 2 bad input.

Example:
  flimcd status --control unix:/run/flimcd-src.ctl    # phase idle, last migration ended: …
  flimcd retry --control unix:/run/flimcd-src.ctl`,
    )
    .action(async (o: CommonOptions) => {
      const { addr, timeoutMs } = common(o);
      const r = agentAnswer(addr, await controlRequest<{ accepted: boolean }>(addr, 'POST', '/retry', {}, { timeoutMs }).catch(refusal(addr)));
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `flimcd: the source agent at ${formatAddress(addr)} starts a new migration\n`);
    });

  program
    .command('abort')
    .description('Abort a running migration. Before cut-over the VM keeps running at the source: the source agent serves its disk until the VM disconnects, then exits 1. After cut-over the source refuses: the VM runs at the target and the only way forward is to finish.')
    .requiredOption('--control <addr>', CONTROL_HELP)
    .option('--reason <text>', 'why; logged by both agents and sent to the peer')
    .option('--json', 'print the agent\'s answer as JSON')
    .option('--timeout <duration>', TIMEOUT_HELP, '5s')
    .addHelpText(
      'after',
      `
The agent answers once the migration has wound down: the source is then idle (it serves the VM's
disk and migrates nothing; with --keep-serving, flimcd retry starts a new migration). A wind-down
longer than 3 s is answered with phase aborting; flimcd status shows idle once it is over.
The source's state dir records the abort: a restarted source agent starts a new migration, it does not resume this one.

Exit codes: 0 accepted, 1 refused (already done or failed, or the source past cut-over) or agent unreachable, 2 bad input.

Examples:
  flimcd abort --control unix:/run/flimcd-source.ctl --reason "maintenance window over"
  flimcd abort --control tcp:127.0.0.1:7071 --json`,
    )
    .action(async (o: CommonOptions & { reason?: string }) => {
      const { addr, timeoutMs } = common(o);
      const body = o.reason !== undefined ? { reason: o.reason } : {};
      const r = agentAnswer(addr, await controlRequest<{ accepted: boolean; phase?: string; abortedIn?: string; reason?: string }>(addr, 'POST', '/abort', body, { timeoutMs }).catch(refusal(addr)));
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `flimcd: abort accepted by the agent at ${formatAddress(addr)} in phase ${r.abortedIn ?? r.phase ?? '?'} (reason: ${r.reason ?? '?'}); ${afterAbort(r.phase, addr)}\n`);
    });
}
