/**
 * Where the process logger's lines go. pino hands every event over as one JSON
 * line; the sink writes it as is (format "json") or as one human line (format
 * "text": "12:04:05.123 INFO  message key=value …"). While a progress bar is
 * drawn on the same terminal, the bar registers an overlay: each log line is
 * handed to it, and it prints the line above the bar and redraws the bar, so a
 * log line is never glued onto the bar's line.
 */
export type LogFormat = 'json' | 'text';

export interface LogStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

/** Fields every pino line carries that the text format leaves out or shows elsewhere. */
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** A field value longer than this is cut in the text format (a log line stays one line). */
const MAX_VALUE_CHARS = 300;

const pad2 = (n: number) => n.toString().padStart(2, '0');

function valueText(v: unknown): string {
  const s = typeof v === 'string' ? (/^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)) : JSON.stringify(v) ?? String(v);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}

/** One pino JSON line as one human line (no trailing newline); a line that is not JSON passes through trimmed. */
export function formatLogLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\s+$/, '').replace(/\n/g, ' ');
  }
  const t = typeof o.time === 'number' ? new Date(o.time) : undefined;
  const time = t ? `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}.${t.getMilliseconds().toString().padStart(3, '0')}` : '';
  const level = (typeof o.level === 'number' ? LEVEL_NAMES[o.level] : undefined) ?? (typeof o.level === 'string' ? o.level : '');
  const msg = typeof o.msg === 'string' ? o.msg.replace(/\n/g, ' ') : '';
  const fields = Object.entries(o)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${valueText(v)}`);
  return [time, level.padEnd(5), msg, ...fields].filter((p) => p !== '').join(' ');
}

export class LogSink {
  private overlay: ((line: string) => void) | undefined;

  constructor(
    private readonly stream: LogStream,
    public format: LogFormat,
  ) {}

  /** pino's destination interface: one JSON line per call. */
  write(chunk: string): void {
    const line = this.format === 'text' ? formatLogLine(chunk) : chunk.replace(/\n$/, '');
    if (this.overlay) this.overlay(line);
    else this.stream.write(line + '\n');
  }

  /** While set, lines go to `print` (a progress bar printing above itself) instead of the stream; returns the undo. */
  setOverlay(print: (line: string) => void): () => void {
    this.overlay = print;
    return () => {
      if (this.overlay === print) this.overlay = undefined;
    };
  }
}

/** The format a stream gets unless told: text on a terminal, JSON lines anywhere else. */
export function defaultLogFormat(stream: LogStream, env: NodeJS.ProcessEnv): LogFormat {
  const f = env.FLIMCD_LOG_FORMAT;
  if (f === 'json' || f === 'text') return f;
  return stream.isTTY === true ? 'text' : 'json';
}
