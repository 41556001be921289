import { AFTER_CUTOVER_PHASES } from '../control/types.ts';

/**
 * What a SIGINT or SIGTERM means to the source agent, by migration phase.
 *
 * - Before the cut-over (starting, dialling, pre-copy, failed): the first
 *   signal ends the migration (`abort`); the VM keeps its disk here and the
 *   agent serves it until the VM disconnects. Another signal then exits at
 *   once (`exit`).
 * - From the cut-over on (cutover, postcopy, verify, done): the VM runs at
 *   the target and reads its missing blocks from here, so a signal means
 *   "finish post-copy, then exit" (`finish`). A second signal within
 *   `confirmWindowMs` only asks for confirmation (`confirm`); a third within
 *   the window of the second exits at once (`exit`), the state kept for a
 *   resume. A signal after the window has passed starts over at `finish`.
 */
export type SourceStopAction = 'abort' | 'finish' | 'confirm' | 'exit';

/** How long a second (third) signal counts as insisting on the first (second). */
export const CONFIRM_WINDOW_MS = 10_000;

export class SourceStopPolicy {
  private aborted = false;
  /** Signals received after the cut-over within each other's window, and when the last one came. */
  private insisted = 0;
  private lastAt = -Infinity;

  constructor(private readonly confirmWindowMs = CONFIRM_WINDOW_MS) {}

  /** The action for a signal received at `now` (ms) while the migration is in `phase`. */
  onSignal(phase: string, now: number): SourceStopAction {
    if (this.aborted) return 'exit';
    if (!isAfterCutover(phase)) {
      this.aborted = true;
      return 'abort';
    }
    this.insisted = now - this.lastAt <= this.confirmWindowMs ? this.insisted + 1 : 1;
    this.lastAt = now;
    if (this.insisted === 1) return 'finish';
    if (this.insisted === 2) return 'confirm';
    return 'exit';
  }
}

/** From the hand-off on, the VM may run at the target and read from this source: it must be served to the end. */
export function isAfterCutover(phase: string): boolean {
  return AFTER_CUTOVER_PHASES.includes(phase) || phase === 'done';
}
