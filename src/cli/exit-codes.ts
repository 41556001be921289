import { ErrorCode, FlimcdError, UsageError, systemErrorCode } from '../errors.ts';

/** Process exit codes of the flimcd command; stable for scripts. */
export const ExitCode = {
  OK: 0,
  /** Runtime failure: I/O error, peer unreachable, protocol error. */
  FAILURE: 1,
  /** Bad command-line input. */
  USAGE: 2,
  /** A verification (data check or Merkle root) failed. */
  VERIFY_FAILED: 3,
  /** The link to the peer agent stayed down past --link-timeout; the state dir is kept: restart with the same arguments to resume. */
  LINK_LOST: 4,
  /** Stopped by SIGINT. */
  INTERRUPTED: 130,
  /** Stopped by SIGTERM. */
  TERMINATED: 143,
} as const;

/** The exit code of a command stopped by `signal`: 130 for SIGINT, 143 for SIGTERM (128 + the signal's number, as a shell reports it). */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
}


/** The exit code for an error that ended a command: 2 for bad input, 4 for a lost link, 1 for any other failure. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return ExitCode.USAGE;
  if (err instanceof FlimcdError && err.code === ErrorCode.ALREADY_DONE) return ExitCode.OK;
  if (err instanceof FlimcdError && err.code === ErrorCode.LINK_LOST) return ExitCode.LINK_LOST;
  return ExitCode.FAILURE;
}

/**
 * The one line the command prints for it. Only an error nobody anticipated (a
 * bug: no flimcd code, no system error code) carries its stack.
 */
export function errorLine(err: unknown): string {
  if (err instanceof UsageError || (err instanceof FlimcdError && err.code === ErrorCode.ALREADY_DONE)) return `flimcd: ${err.message}`;
  if (err instanceof FlimcdError) return `flimcd: ${err.message} [${err.code}]`;
  const code = systemErrorCode(err);
  if (code) return `flimcd: ${(err as Error).message ?? String(err)}`;
  return `flimcd: unexpected error: ${(err as Error)?.stack ?? String(err)}`;
}
