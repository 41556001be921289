/**
 * --quiet, --verbose and --log-format for the agent commands. The level they
 * pick wins over FLIMCD_LOG_LEVEL; without them FLIMCD_LOG_LEVEL (or "info") holds.
 */
import { Option, type Command } from 'commander';
import { configureLog, type LogFormat, type LogLevel } from '../util/log.ts';
import { UsageError } from '../errors.ts';

export interface LogFlags {
  quiet?: boolean;
  verbose?: boolean;
  logFormat?: LogFormat;
}

/** The level and format the flags ask for; --quiet with --verbose is bad input. */
export function logSettingsFromFlags(f: LogFlags): { level?: LogLevel; format?: LogFormat } {
  if (f.quiet && f.verbose) throw new UsageError('--quiet and --verbose contradict each other: pass one');
  return { ...(f.quiet ? { level: 'warn' as const } : f.verbose ? { level: 'debug' as const } : {}), ...(f.logFormat ? { format: f.logFormat } : {}) };
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .option('-q, --quiet', 'log only warnings and errors')
    .option('-v, --verbose', 'log debug detail too')
    .addOption(new Option('--log-format <format>', 'log lines on stderr: text (default on a terminal) or json (default elsewhere)').choices(['text', 'json']))
    .hook('preAction', (_self, action) => configureLog(logSettingsFromFlags(action.opts<LogFlags>())));
}
