/**
 * A time slice of a recorded trace (testing/traces/): the requests from
 * `fromS` seconds after its first one, for `seconds` (all of the rest when
 * omitted). The simulator's validation replays slices of a recorded guest
 * trace in both runs (bench/sim-validate.ts, test/sim/validation*.test.ts).
 */
import { parseFiuTrace, type FiuRecord } from '../workload/fiu-trace.ts';
import { readTraceText } from '../workload/trace-recorder.ts';

export function traceSlice(file: string, fromS = 0, seconds?: number): FiuRecord[] {
  const all = [...parseFiuTrace(readTraceText(file))];
  const t0 = all[0]?.tsNs ?? 0n;
  const from = t0 + BigInt(Math.round(fromS * 1e9));
  const to = seconds === undefined ? undefined : from + BigInt(Math.round(seconds * 1e9));
  return all.filter((r) => r.tsNs >= from && (to === undefined || r.tsNs < to));
}
