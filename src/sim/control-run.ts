/**
 * The paired control run behind `guest_slowdown`: the same requests (a fresh
 * source of the same seed or trace), the same VM and disk model, on the
 * source's disk stack with no migration at all. Its mean response time over
 * the migration run's window (requests that arrived in the same span of
 * virtual time: arrivals are open-loop, so they are the same requests) is
 * what the migration's mean is divided by.
 */
import { VirtualClock } from '../util/clock.ts';
import { buildSourceDisks } from '../migrate/stack.ts';
import type { RequestSource } from '../workload/executor.ts';
import { modelledRuntime } from './content-model.ts';
import { SimDisk } from './sim-disk.ts';
import { SimVm } from './sim-vm.ts';
import { runVirtual } from './simulate.ts';

export interface ControlRunOptions {
  image: SimDisk;
  requests: RequestSource;
  /** The migration run's window, ms since its VM started. */
  window: { fromMs: number; toMs: number };
  queueDepth?: number;
}

/** Mean response time (ms) of the window's requests without a migration; null if none arrived in it. */
export async function controlResponseMs(o: ControlRunOptions): Promise<number | null> {
  const clock = new VirtualClock();
  const runtime = modelledRuntime(clock);
  const image = new SimDisk(o.image.size, o.image.unit);
  image.copyFrom(o.image);
  const { gate } = buildSourceDisks({ runtime, image, blockSize: o.image.unit });
  const vm = new SimVm({ clock, source: gate, target: gate, requests: o.requests, queueDepth: o.queueDepth });
  vm.start();
  clock.setTimer(o.window.fromMs, () => vm.migrationStarted());
  const end = new Promise<void>((r) => clock.setTimer(o.window.toMs, () => {
    vm.migrationEnded();
    r();
  }));
  await runVirtual(clock, end, o.window.toMs + 1);
  await runVirtual(clock, vm.stop(), 60_000);
  return vm.stats().response_during_ms;
}
