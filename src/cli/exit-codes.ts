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
} as const;
