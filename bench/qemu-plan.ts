/**
 * What bench:qemu runs, in order, apart from running it: `--dry-run` prints
 * it, and test/bench/qemu-plan.test.ts checks it without a guest.
 *
 * - tune: when several mirror settings (granularity/buf-size) are given, one
 *   QEMU run per case, copy mode and setting; the fastest (time_total) per case
 *   and mode is then used in the measured runs.
 * - measure: `runs` rounds; each round runs every case with flimcd and QEMU in
 *   each copy mode, in an order that reverses from one round to the next.
 */
import { parseSize } from '../src/util/units.ts';
import { UsageError } from '../src/errors.ts';

export const QEMU_BENCH_CASES = ['base', 'empty'] as const;
export type QemuBenchCase = (typeof QEMU_BENCH_CASES)[number];
export const MIRROR_MODES = ['background', 'write-blocking'] as const;
export type MirrorMode = (typeof MIRROR_MODES)[number];

export interface MirrorSetting {
  granularity: number;
  bufSize: number;
}

/** A method as run and reported: flimcd, or QEMU's mirror in one copy mode. */
export type BenchMethod = 'flimcd' | `qemu-${MirrorMode}`;

export interface PlanStep {
  phase: 'tune' | 'measure';
  /** 0-based round (tune: always 0). */
  run: number;
  case: QemuBenchCase;
  method: BenchMethod;
  /** Tune steps: the setting tried. Measure steps of QEMU use the tuned best (or the only setting). */
  mirror?: MirrorSetting;
}

/** QEMU's default mirror granularity for a raw or 64 KiB-cluster target, and its default buf-size (10 MiB). */
export const QEMU_DEFAULT_MIRROR: MirrorSetting = { granularity: 64 * 1024, bufSize: 10 * 1024 * 1024 };

/**
 * `GRAN/BUF[,GRAN/BUF...]`, e.g. `64K/10M,1M/32M`. Granularity: a power of two
 * from 512 B to 64 MiB (QEMU's limits); buf-size at least the granularity.
 * Throws a UsageError naming what was wrong.
 */
export function parseMirrorSettings(text: string, what = '--mirror-tune'): MirrorSetting[] {
  const out: MirrorSetting[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^/]+)\/([^/]+)$/.exec(item);
    if (!m) throw new UsageError(`${what}: "${item}" is not GRANULARITY/BUF-SIZE (e.g. 64K/10M)`);
    const granularity = parseSize(m[1]!, `${what} granularity`);
    const bufSize = parseSize(m[2]!, `${what} buf-size`);
    if (granularity < 512 || granularity > 64 * 1024 * 1024 || (granularity & (granularity - 1)) !== 0) {
      throw new UsageError(`${what}: granularity ${m[1]} must be a power of two from 512 to 64M`);
    }
    if (bufSize < granularity) throw new UsageError(`${what}: buf-size ${m[2]} is smaller than the granularity ${m[1]}`);
    out.push({ granularity, bufSize });
  }
  if (!out.length) throw new UsageError(`${what}: no settings given`);
  return out;
}

export function benchPlan(o: { cases: readonly QemuBenchCase[]; runs: number; modes: readonly MirrorMode[]; mirror: readonly MirrorSetting[] }): PlanStep[] {
  const steps: PlanStep[] = [];
  if (o.mirror.length > 1) {
    for (const c of o.cases) for (const mode of o.modes) for (const m of o.mirror) steps.push({ phase: 'tune', run: 0, case: c, method: `qemu-${mode}`, mirror: m });
  }
  const methods: BenchMethod[] = ['flimcd', ...o.modes.map((m) => `qemu-${m}` as const)];
  for (let run = 0; run < o.runs; run++) {
    for (const c of o.cases) {
      const order = run % 2 === 0 ? methods : [...methods].reverse();
      for (const method of order) steps.push({ phase: 'measure', run, case: c, method, ...(method !== 'flimcd' && o.mirror.length === 1 ? { mirror: o.mirror[0] } : {}) });
    }
  }
  return steps;
}
