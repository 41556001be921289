/**
 * The order a fleet's migrations start in (`order:` in the plan). With a
 * shared WAN cap the group's makespan hardly depends on the order (the link
 * carries the same bytes), so the rule aims at what does: deadlines met, and
 * VMs done early (each finished VM frees its source host and its share).
 *
 * - `auto` (default): VMs with a deadline first, earliest deadline first (EDF:
 *   it meets every deadline any order meets when the link is the bottleneck);
 *   then the rest shortest predicted first (SPT: the least mean completion
 *   time); ties by priority (higher first), then as listed.
 * - `deadline`: EDF, VMs without a deadline last, then as listed.
 * - `shortest-first`: SPT alone.
 * - `as-listed`: the file's order.
 *
 * The prediction (`predict:` in the plan):
 * - `size` (default): a first-order model, the VM's allocated bytes over its
 *   fair share of the cap while `concurrency` migrations share it. Costs a
 *   stat per image.
 * - `simulator`: the planner (`flimcd plan`, src/sim/planner.ts) simulates
 *   each VM's migration with the plan's algorithm at that share and the plan's
 *   `wan_rtt` (its image scanned: zero blocks, compression; an idle VM), so a
 *   VM whose allocated blocks are mostly zeros or compress well is predicted
 *   short. Reads every image once before the run (src/cli/fleet-predictions.ts).
 * Dedup against the destination is not known before the targets answer, so
 * both leave it out (the same for every VM).
 */
import type { FleetVm, OrderRule } from './plan.ts';

export interface Predicted {
  vm: FleetVm;
  /** Allocated bytes of the VM's image (what a full copy would send). */
  dataBytes: number;
  /** Predicted migration time at its share of the cap, seconds. */
  predictedS: number;
}

/** Each VM's expected share of the cap (bits/s) while `concurrency` of these VMs share it by weight. */
export function fairShares(vms: readonly FleetVm[], capBps: number, concurrency: number): number[] {
  const running = Math.max(1, Math.min(concurrency, vms.length));
  const meanWeight = vms.reduce((s, v) => s + v.priority, 0) / Math.max(1, vms.length);
  return vms.map((vm) => (capBps * vm.priority) / (meanWeight * running));
}

/**
 * Each VM's predicted time at its fair share of the cap: `simulatedS` (the
 * planner's, by name) where given, else the first-order model.
 */
export function predict(vms: Array<{ vm: FleetVm; dataBytes: number }>, capBps: number, concurrency: number, simulatedS?: ReadonlyMap<string, number>): Predicted[] {
  const shares = fairShares(vms.map((v) => v.vm), capBps, concurrency);
  return vms.map(({ vm, dataBytes }, i) => ({ vm, dataBytes, predictedS: simulatedS?.get(vm.name) ?? (dataBytes * 8) / Math.max(1, shares[i]!) }));
}

export function orderVms(p: Predicted[], rule: OrderRule): Predicted[] {
  const byListed = (a: Predicted, b: Predicted) => a.vm.index - b.vm.index;
  const byDeadline = (a: Predicted, b: Predicted) => (a.vm.deadlineMs ?? Infinity) - (b.vm.deadlineMs ?? Infinity);
  const byShortest = (a: Predicted, b: Predicted) => a.predictedS - b.predictedS;
  const byPriority = (a: Predicted, b: Predicted) => b.vm.priority - a.vm.priority;
  const chain = (...cmp: Array<(a: Predicted, b: Predicted) => number>) => (a: Predicted, b: Predicted) => {
    for (const c of cmp) {
      const d = c(a, b);
      if (d !== 0 && !Number.isNaN(d)) return d;
    }
    return 0;
  };
  const sorted = [...p];
  switch (rule) {
    case 'as-listed': return sorted.sort(byListed);
    case 'deadline': return sorted.sort(chain(byDeadline, byListed));
    case 'shortest-first': return sorted.sort(chain(byShortest, byPriority, byListed));
    case 'auto': return sorted.sort(chain(byDeadline, byShortest, byPriority, byListed));
  }
}
