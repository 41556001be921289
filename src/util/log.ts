import { pino, type Logger } from 'pino';

/**
 * The process logger: JSON lines on stderr (stdout belongs to reports and
 * --json output). Level from FLIMCD_LOG_LEVEL (default "info"; tests set "silent").
 */
export const log: Logger = pino(
  { level: process.env.FLIMCD_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ dest: 2, sync: true }),
);

export type { Logger };
