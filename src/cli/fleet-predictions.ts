/**
 * `predict: simulator` in a fleet plan: each VM's migration time from the
 * planner (src/sim/planner.ts, what `flimcd plan` runs), simulated with the
 * plan's algorithm at the VM's fair share of the WAN cap and the plan's
 * `wan_rtt`, on the VM's scanned image (an idle VM). Lives in the CLI, which
 * may use the simulator; src/fleet takes the numbers handed in.
 */
import type { Logger } from 'pino';
import type { FleetPlan } from '../fleet/plan.ts';
import { fairShares } from '../fleet/order.ts';
import { scanImage } from '../sim/image-model.ts';
import { plan } from '../sim/planner.ts';

export async function simulatedPredictions(p: FleetPlan, log: Logger): Promise<Map<string, number>> {
  const shares = fairShares(p.vms, p.wanCapBps, p.concurrency);
  const out = new Map<string, number>();
  for (const [i, vm] of p.vms.entries()) {
    const spec = vm.image;
    try {
      const image = await scanImage(spec.kind === 'file' ? spec.path : spec.uri, p.blockSize, undefined, spec.kind === 'file' ? spec.format : 'raw');
      const r = await plan({ image, bandwidthBps: shares[i]!, rttMs: p.wanRttMs, algorithms: [p.algorithm] });
      const row = r.rows[0];
      if (row?.verified) out.set(vm.name, row.time_total_s);
    } catch (e) {
      log.warn({ vm: vm.name, err: (e as Error).message }, 'could not simulate this VM\'s migration: its order uses the size model');
    }
  }
  return out;
}
