import { pino, type Logger } from 'pino';
import { LogSink, defaultLogFormat, type LogFormat } from './log-sink.ts';

/**
 * The process logger on stderr (stdout belongs to reports and --json output):
 * human lines on a terminal, JSON lines elsewhere or with FLIMCD_LOG_FORMAT=json
 * (the CLI's --log-format). Level from FLIMCD_LOG_LEVEL (default "info"; tests
 * set "silent"), or the CLI's --quiet / --verbose.
 * The logger and its sink are the process's one shared output, like stderr itself.
 */
export const logSink = new LogSink(process.stderr, defaultLogFormat(process.stderr, process.env));

export const log: Logger = pino({ level: process.env.FLIMCD_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, logSink);

export const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Sets the level and format the CLI was asked for (undefined: keep the default). */
export function configureLog(o: { level?: LogLevel; format?: LogFormat }): void {
  if (o.level) log.level = o.level;
  if (o.format) logSink.format = o.format;
}

export type { Logger, LogFormat };
