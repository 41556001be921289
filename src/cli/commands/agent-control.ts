import type { Address } from '../../util/address.ts';
import { UsageError } from '../../errors.ts';

export interface ControllableAgent {
  status(): Record<string, unknown>;
  abort(reason: string): void;
  cutover?(): void;
}

/** Serves an agent's control endpoint (status, cutover, abort, /metrics). */
export async function attachControl(addr: Address, role: 'source' | 'target', agent: ControllableAgent): Promise<{ close(): Promise<void> }> {
  void addr; void role; void agent;
  throw new UsageError('--control is not available in this build yet');
}
