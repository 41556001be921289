import type { Address } from '../../util/address.ts';
import { ControlServer } from '../../control/server.ts';
import { log } from '../../util/log.ts';
import type { CutoverRequest } from '../../control/types.ts';

export interface ControllableAgent {
  status(): Record<string, unknown>;
  /** May resolve once the migration has wound down: the control endpoint answers then (bounded). */
  abort(reason: string, opts?: { reclaim?: boolean }): void | Promise<void>;
  cutover?(opts?: CutoverRequest): void;
  retry?(): Promise<void>;
}

/** Serves an agent's control endpoint: GET /status, POST /cutover, POST /abort, POST /retry, GET /metrics. */
export async function attachControl(addr: Address, role: 'source' | 'target', agent: ControllableAgent): Promise<{ close(): Promise<void> }> {
  const server = new ControlServer({
    address: addr,
    log: log.child({ component: 'control' }),
    rateSampleMs: 1000,
    control: {
      role,
      status: () => agent.status(),
      cutover: agent.cutover ? (opts?: CutoverRequest) => agent.cutover!(opts) : undefined,
      retry: agent.retry ? () => agent.retry!() : undefined,
      abort: (reason: string, opts?: { reclaim?: boolean }) => (opts ? agent.abort(reason, opts) : agent.abort(reason)),
    },
  });
  await server.listen();
  return server;
}
