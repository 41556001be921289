/**
 * bench:perf's downtime: a used disk's content (src/workload/image-gen.ts) migrated with the
 * moderate workload running at the source, once as an image of just that content and once as the
 * same content at the start of a 64 GiB sparse image (downtime must be flat in the image's size).
 *
 * Breakdown of `downtime_ms` (the report's: from the source holding the VM's I/O until the target
 * serves, less half the smallest RTT), from the agents' cut-over log lines:
 * - before the downtime (the VM still running), shown apart: `drain_ms`, the source waiting for the
 *   target to apply what was on the link, and `in_flight_kib`, what was still unacked at the hold
 *   (0 unless the drain timed out); `hold_ms`, the VM's requests in flight finishing;
 * - `handoff_ms`: source, from held until CUTOVER is queued (purge, missing map), of which
 *   `persist_ms` the durable record that the cut-over began;
 * - `apply_ms`: target, applying what came before CUTOVER;
 * - `durable_ms`: target, the image flush and the missing map made durable;
 * - `serve_ms`: target, from durable to serving (prefetcher, gate);
 * - `link_ms`: the rest: CUTOVER's trip, and whatever was queued ahead of it on the link.
 * Both agents run on this host, so their log lines' wall-clock times also give, without the
 * report's half-RTT estimate:
 * - `served_after_ms`: from the hold at the source until the target serves: the VM's storage
 *   downtime as one clock sees it (the report's `downtime_ms` adds CUTOVER_DONE's trip back less
 *   half the smallest RTT);
 * - `cutover_trip_ms`: from CUTOVER queued at the source until the target began its cut-over.
 */
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { logLine, migrateThroughWan } from './agents.ts';
import { moderateLoad } from './fio-load.ts';

export interface DowntimeRow {
  image: string;
  image_bytes: number;
  data_bytes: number;
  downtime_ms: number;
  drain_ms: number | null;
  in_flight_kib: number | null;
  hold_ms: number | null;
  handoff_ms: number | null;
  persist_ms: number | null;
  link_ms: number | null;
  apply_ms: number | null;
  durable_ms: number | null;
  serve_ms: number | null;
  rtt_ms: number | null;
  served_after_ms: number | null;
  cutover_trip_ms: number | null;
  verified: boolean;
}

const num = (o: Record<string, unknown> | undefined, k: string): number | null => (typeof o?.[k] === 'number' ? +(o[k]).toFixed(1) : null);

export async function measureDowntime(dir: string, o: { dataBytes: number; imageBytes: number; bandwidthBps: number; rttMs: number }): Promise<DowntimeRow> {
  const image = join(dir, 'downtime.img');
  await generateImage(image, o.dataBytes, { seed: 7 });
  if (o.imageBytes > o.dataBytes) truncateSync(image, o.imageBytes);
  const r = await migrateThroughWan({
    dir, image, bandwidthBps: o.bandwidthBps, rttMs: o.rttMs, logLevel: 'info',
    duringMigration: (nbd, stop) => moderateLoad(nbd, o.bandwidthBps, stop),
  });
  const src = logLine(r.logs.source, 'cut-over: VM I/O held');
  const drain = logLine(r.logs.source, 'cut-over: link drained') ?? logLine(r.logs.source, 'cut-over: the link did not drain');
  const inFlight = num(drain, 'inFlight');
  const tgt = logLine(r.logs.target, 'cut-over: serving the VM');
  const d = r.report.downtime_ms;
  const parts = [num(src, 'handoffMs'), num(tgt, 'applyMs'), num(tgt, 'durableMs'), num(tgt, 'serveMs')];
  const known = parts.every((p) => p !== null) ? parts.reduce((s, p) => s + p, 0) : null;
  // pino's `time` is the wall clock (ms) when the line was logged: the source logs right after the hand-off, just before CUTOVER is queued.
  const queuedAt = num(src, 'time');
  const servedAt = num(tgt, 'time');
  const [handoff, apply, durable, serve] = parts;
  const frozenAt = queuedAt !== null && handoff != null ? queuedAt - handoff : null;
  const beganAt = servedAt !== null && apply != null && durable != null && serve != null ? servedAt - apply - durable - serve : null;
  return {
    image: o.imageBytes >= 2 ** 30 ? `${(o.imageBytes / 2 ** 30).toFixed(0)} GiB` : `${(o.imageBytes / 2 ** 20).toFixed(0)} MiB`, image_bytes: o.imageBytes, data_bytes: o.dataBytes, downtime_ms: d,
    drain_ms: num(drain, 'drainMs'), in_flight_kib: inFlight === null ? null : Math.round(inFlight / 1024), hold_ms: num(src, 'holdMs'), handoff_ms: parts[0]!, persist_ms: num(src, 'persistMs'), link_ms: known === null ? null : +(d - known).toFixed(1),
    apply_ms: parts[1]!, durable_ms: parts[2]!, serve_ms: parts[3]!, rtt_ms: r.report.link.rtt_ms,
    served_after_ms: servedAt !== null && frozenAt !== null ? +(servedAt - frozenAt).toFixed(1) : null,
    cutover_trip_ms: beganAt !== null && queuedAt !== null ? +(beganAt - queuedAt).toFixed(1) : null,
    verified: r.report.verified,
  };
}
