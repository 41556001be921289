/**
 * The contract between a running agent (source or target) and its control
 * endpoint (`ControlServer`), the `flimcd status|cutover|abort` commands and
 * the progress display. Everything here is plain data: no engine classes.
 */

export type AgentRole = 'source' | 'target';

/**
 * What `GET /status` answers: JSON-serialisable, one flat object with the
 * well-known fields below (all optional except `phase`) plus whatever else the
 * agent wants to expose. Numeric fields, and records of numbers (`counts`),
 * are mirrored into Prometheus metrics generically (see metrics.ts).
 *
 * Units are in the names: `…Ms` milliseconds, `…Bps` bits per second,
 * `…Bytes` bytes, `…Seconds` seconds; `progress` is a fraction 0..1.
 */
export interface AgentStatus {
  /** Filled in by the server from `AgentControl.role` when absent. */
  role?: AgentRole;
  /** A migration phase (report.ts `Phase`): starting, precopy, cutover, postcopy, verify, done, failed. */
  phase: string;
  /** Fraction 0..1 of the image present at the target, when this side can tell; null when it cannot. */
  progress?: number | null;
  /** Blocks this side still has to move (source: pre-copy dirty set, then post-copy push set; target: missing blocks in post-copy). */
  remainingBlocks?: number | null;
  blocks?: number;
  blockSize?: number;
  elapsedMs?: number;
  /** Estimated seconds to done, null when unknown. */
  etaSeconds?: number | null;
  /** All bytes this side's link carried, both directions (docs/design.md `wire_bytes` for one side). */
  wireBytes?: number;
  /** Observed rate of `wireBytes` (source) or received payload (target) over the last seconds, bits/s. */
  transferRateBps?: number | null;
  /** The link's measured delivery rate (channel estimate), bits/s. */
  linkRateBps?: number | null;
  rttMs?: number | null;
  /** Post-copy: blocks read at the target that were absent / all blocks read at the target. */
  blockMissRate?: number | null;
  /** Counters by name (blocks sent by kind, events); mirrored as labelled metrics. */
  counts?: Record<string, number>;
  [key: string]: unknown;
}

/** One extra Prometheus sample an agent may add to `GET /metrics`. */
export interface MetricSample {
  /** Full metric name, e.g. `flimcd_nbd_requests_total`. */
  name: string;
  help?: string;
  /** Default gauge. A counter must only grow. */
  type?: 'gauge' | 'counter';
  labels?: Record<string, string>;
  value: number;
}

export type MetricsSnapshot = MetricSample[];

/** What a running agent hands to its ControlServer. */
/** POST /cutover's body. */
export interface CutoverRequest {
  /**
   * The hypervisor has already paused the VM (QEMU's pre-switchover): hold at
   * once. Otherwise the source first lets the link drain while the VM still
   * runs; with the VM paused that wait would be downtime, a round trip more
   * than sending CUTOVER behind what is on the link.
   */
  vmPaused?: boolean;
}

export interface AgentControl {
  role: AgentRole;
  /**
   * Called on every GET /status and GET /metrics; must be cheap. A raw engine
   * status is fine: the server completes it (createStatusEnricher: progress,
   * etaSeconds, transferRateBps, remainingBlocks, blockMissRate) where absent.
   */
  status(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /**
   * Ask for cut-over now (source role). Absent → POST /cutover answers 409.
   * The server checks `status().phase` first: only `starting` and `precopy`
   * can cut over. Throwing a FlimcdError here also answers 409 with its message.
   */
  cutover?(opts?: CutoverRequest): void | Promise<void>;
  /**
   * Abort the migration; the VM keeps running where it is safe (engine semantics). A promise resolves
   * once the migration has wound down: POST /abort answers then, or after `abortWindDownMs` with the
   * phase status shows meanwhile (the source's `aborting`).
   */
  abort(reason: string, opts?: { reclaim?: boolean }): void | Promise<void>;
  /**
   * Start a new migration after one ended with the VM's disk here (source role, phase `idle`).
   * Absent → POST /retry answers 409; throwing a FlimcdError answers 409 with its message.
   */
  retry?(): void | Promise<void>;
  /** Extra samples for GET /metrics beyond those derived from status(). */
  metrics?: () => MetricsSnapshot;
}

/** Phases from which an operator cut-over makes sense. */
export const CUTOVER_PHASES: readonly string[] = ['starting', 'precopy'];
/** Phases in which the VM may already run at the target: the source must serve it to the end. */
export const AFTER_CUTOVER_PHASES: readonly string[] = ['cutover', 'postcopy', 'verify'];
/** The source after a migration ended with the VM's disk here: it only serves the VM until POST /retry. */
export const IDLE_PHASE = 'idle';
/** The source between an abort and `idle`: the migration winding down. */
export const ABORTING_PHASE = 'aborting';
/** Phases after which there is nothing left to abort. */
export const FINAL_PHASES: readonly string[] = ['done', 'failed'];
