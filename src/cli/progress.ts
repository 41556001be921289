/**
 * Progress display for long-running agent commands (source, target, demo).
 * It takes plain status objects (AgentStatus or a raw engine status, which it
 * completes with progress/ETA/rate like the control endpoint does), never an
 * engine, so the simulator and tests can drive it too.
 *
 * Three modes, picked by createProgress({ json, tty }):
 *   json   one JSON object per line on `out` (stdout):
 *            {"event":"phase","phase":"postcopy","progress":0.75,…}   on each phase change
 *            {"event":"progress","phase":…,"progress":…,"etaSeconds":…} at most every intervalMs
 *            {"event":NAME,…fields}                                   from event()
 *            {"event":"report",…report}                               from done()
 *   tty    a cli-progress bar on `stream` (stderr): role, phase, bar, percentage,
 *          rate, ETA, wire bytes; phase changes, events and (with `logSink`)
 *          the process's log lines are printed above it.
 *   plain  (not a TTY) a line per phase change and per event on `stream`; no bar.
 *          With `log`, these go through the logger instead (a JSON line with the
 *          fields off a terminal, like every other line on stderr there).
 * In the human modes done() prints the report on `out` (formatReport when given).
 */
import cliProgress from 'cli-progress';
import { createStatusEnricher } from '../control/status.ts';
import type { AgentRole, AgentStatus } from '../control/types.ts';
import { formatBytes } from '../util/units.ts';
import { formatEta, formatPercent, formatRate, statusLine } from './status-format.ts';

export interface ProgressOptions {
  /** JSON lines instead of human output. */
  json?: boolean;
  /** Draw a bar; default: `stream.isTTY`. Ignored with json. */
  tty?: boolean;
  /** Where the bar and human progress lines go (default process.stderr). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Where JSON lines and the final report go (default process.stdout). */
  out?: NodeJS.WritableStream;
  /** Shown before human lines ("flimcd source: …"); default from the status role. */
  label?: string;
  role?: AgentRole;
  /** JSON mode: least milliseconds between two "progress" events (default 1000; 0: every update). */
  intervalMs?: number;
  /** Milliseconds clock (tests). */
  now?: () => number;
  /** Human text of the final report; default a short summary of the known fields. */
  formatReport?: (report: Record<string, unknown>) => string;
  /**
   * The process's log sink (util/log.ts logSink): while the bar is drawn, log
   * lines are printed above it and the bar redrawn, never glued onto its line.
   */
  logSink?: { setOverlay(print: (line: string) => void): () => void };
  /** Plain mode: phase changes and events as log events (info) with their fields, instead of bare lines on `stream`. */
  log?: { info(fields: Record<string, unknown>, msg: string): void };
}

export interface Progress {
  /** A fresh status; phase changes are announced, the bar / progress events follow. */
  update(status: Record<string, unknown>): void;
  /** A named event with fields (listening, connected, …); `text` is the human line (default "name k=v …"). */
  event(name: string, fields?: Record<string, unknown>, text?: string): void;
  /** A human line for `out` (stdout); printed above the bar instead when `out` and the bar share a terminal. */
  print(line: string): void;
  /** Ends the display and prints the final report. */
  done(report?: Record<string, unknown>): void;
  /** Ends the display without a report (failure, abort). Idempotent. */
  stop(): void;
  /** Calls update(read()) now and every intervalMs until done()/stop(); the timer does not hold the process. */
  watch(read: () => Record<string, unknown>, intervalMs?: number): void;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The fields a progress/phase event carries: the well-known ones, present only when known. */
function summary(s: AgentStatus): Record<string, unknown> {
  const out: Record<string, unknown> = { phase: s.phase };
  for (const k of ['role', 'progress', 'remainingBlocks', 'blocks', 'etaSeconds', 'transferRateBps', 'linkRateBps', 'rttMs', 'wireBytes', 'receivedBytes', 'blockMissRate', 'elapsedMs', 'round']) {
    const v = s[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
}

function fieldsText(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** A short human summary of a MigrationReport-like object (only the fields present). */
export function reportSummary(r: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof r.verified === 'boolean') parts.push(r.verified ? 'verified' : 'NOT VERIFIED');
  if (finite(r.time_total_s)) parts.push(`total ${r.time_total_s.toFixed(2)} s`);
  if (finite(r.time_precopy_s) && finite(r.time_postcopy_s)) parts.push(`pre-copy ${r.time_precopy_s.toFixed(2)} s, post-copy ${r.time_postcopy_s.toFixed(2)} s`);
  if (finite(r.downtime_ms)) parts.push(`downtime ${r.downtime_ms.toFixed(1)} ms`);
  if (finite(r.wire_bytes)) parts.push(`wire ${formatBytes(r.wire_bytes)}`);
  if (finite(r.block_miss_rate)) parts.push(`miss rate ${(r.block_miss_rate * 100).toFixed(2)} %`);
  return `migration ${parts.length ? parts.join(', ') : 'finished'}\n`;
}

export function createProgress(o: ProgressOptions = {}): Progress {
  const stream = o.stream ?? process.stderr;
  const out = o.out ?? process.stdout;
  const now = o.now ?? (() => performance.now());
  const interval = o.intervalMs ?? 1000;
  const enrich = createStatusEnricher({ ...(o.role ? { role: o.role } : {}), now });
  const mode: 'json' | 'tty' | 'plain' = o.json ? 'json' : (o.tty ?? stream.isTTY === true) ? 'tty' : 'plain';
  let phase: string | undefined;
  let lastEventAt = -Infinity;
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  let multibar: cliProgress.MultiBar | undefined;
  let bar: cliProgress.SingleBar | undefined;
  let role: string | undefined = o.role;
  let releaseLog: (() => void) | undefined;

  const label = () => `flimcd${o.label ? ` ${o.label}` : role ? ` ${role}` : ''}`;
  const writeJson = (v: Record<string, unknown>) => out.write(JSON.stringify(v) + '\n');
  const human = (line: string) => {
    if (multibar) {
      multibar.log(line + '\n');
      multibar.update(); // flush the line above the bar now, not at the next redraw
    } else {
      stream.write(line + '\n');
    }
  };

  const ensureBar = () => {
    if (bar) return bar;
    multibar = new cliProgress.MultiBar(
      {
        stream: stream,
        format: '{label} {phase} |{bar}| {pct} | {rateText} | ETA {etaText} | {wire}',
        barsize: 30,
        hideCursor: false,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
        fps: 5,
        noTTYOutput: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar = multibar.create(1000, 0, { label: label(), phase: '', pct: '–', rateText: '–', etaText: '–', wire: '' });
    releaseLog = o.logSink?.setOverlay(human);
    return bar;
  };

  const stopBar = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    releaseLog?.();
    releaseLog = undefined;
    if (multibar) multibar.stop();
    multibar = undefined;
    bar = undefined;
  };

  const p: Progress = {
    update(raw) {
      if (finished) return;
      const s = enrich(raw);
      if (typeof s.role === 'string') role = s.role;
      const changed = s.phase !== phase;
      const previous = phase;
      phase = s.phase;
      if (mode === 'json') {
        const t = now();
        if (changed) {
          writeJson({ event: 'phase', ...summary(s), ...(previous !== undefined ? { previous } : {}) });
          lastEventAt = t;
        } else if (t - lastEventAt >= interval) {
          writeJson({ event: 'progress', ...summary(s) });
          lastEventAt = t;
        }
        return;
      }
      if (mode === 'tty') {
        const b = ensureBar();
        const wire = finite(s.wireBytes) ? `wire ${formatBytes(s.wireBytes)}` : finite(s.receivedBytes) ? `received ${formatBytes(s.receivedBytes)}` : '';
        b.update(finite(s.progress) ? Math.round(s.progress * 1000) : 0, {
          label: label(),
          phase: s.phase,
          pct: formatPercent(s.progress),
          rateText: formatRate(finite(s.transferRateBps) ? s.transferRateBps : s.linkRateBps),
          etaText: formatEta(s.etaSeconds),
          wire,
        });
      }
      if (!changed) return;
      const line = `${label()}: phase ${s.phase}${previous !== undefined ? ` (was ${previous})` : ''} | ${statusLine(s)}`;
      if (mode === 'plain' && o.log) o.log.info({ event: 'phase', ...summary(s), ...(previous !== undefined ? { previous } : {}) }, line);
      else human(line);
    },
    event(name, fields = {}, text) {
      if (finished) return;
      if (mode === 'json') writeJson({ event: name, ...fields });
      else {
        const line = `${label()}: ${text ?? `${name}${Object.keys(fields).length ? ' ' + fieldsText(fields) : ''}`}`;
        if (mode === 'plain' && o.log) o.log.info({ event: name, ...fields }, line);
        else human(line);
      }
    },
    print(line) {
      if (multibar && (out as { isTTY?: boolean }).isTTY === true) human(line);
      else out.write(line + '\n');
    },
    done(report) {
      if (finished) return;
      finished = true;
      stopBar();
      if (!report) return;
      if (mode === 'json') writeJson({ event: 'report', ...report });
      else out.write((o.formatReport ?? reportSummary)(report));
    },
    stop() {
      if (finished) return;
      finished = true;
      stopBar();
    },
    watch(read, intervalMs = 1000) {
      if (finished) return;
      if (timer) clearInterval(timer);
      const tick = () => {
        try {
          p.update(read());
        } catch {
          /* a status read failing must not kill the command */
        }
      };
      tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
  };
  return p;
}
