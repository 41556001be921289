/**
 * bench:perf's goodput: one migration of an incompressible image over a shaped link with the
 * moderate workload running at the source, and where the link's capacity went.
 *
 * - `link_util`: the bytes the link carried forward during the bulk transfer (between 10 % and
 *   90 % of the migration's bytes) over the shaped rate.
 * - `framing`: the share of the agents' own framing in those bytes (frame and DATA headers, acks'
 *   share excluded: they travel the other way), from the report's counts.
 * - `tcp_headers` (veth only): Ethernet/IP/TCP headers, which tbf counts and the emulator does not.
 * - `goodput`: block bytes in DATA frames during the bulk transfer over the shaped rate:
 *   link_util × (1 − framing − other traffic) × (1 − tcp_headers).
 */
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { migrateThroughWan, steadyRateBps } from './agents.ts';
import { createVethLink } from './netns.ts';
import { moderateLoad } from './fio-load.ts';

export interface GoodputRow {
  path: 'emulator' | 'veth';
  link: string;
  bandwidth_bps: number;
  rtt_ms: number;
  goodput: number;
  link_util: number;
  framing: number;
  other_traffic: number;
  tcp_headers: number;
  window_rtt_ms: number | null;
  time_total_s: number;
  downtime_ms: number;
  verified: boolean;
}

export interface GoodputCase { bandwidthBps: number; rttMs: number; path: 'emulator' | 'veth' }

export async function measureGoodput(dir: string, c: GoodputCase, seconds: number): Promise<GoodputRow> {
  const image = join(dir, 'goodput.img');
  // Enough data for `seconds` at the link's rate, random (zstd leaves it as is: the bytes on the link are the block's).
  const size = Math.ceil((c.bandwidthBps / 8) * seconds / (1 << 20)) << 20;
  await generateImage(image, size, { seed: 20, mix: { zero: 0, duplicate: 0, text: 0 } });
  const veth = c.path === 'veth' ? createVethLink(c.bandwidthBps) : undefined;
  try {
    const r = await migrateThroughWan({
      dir, image,
      // Through veth the emulator only delays: tbf shapes.
      bandwidthBps: veth ? 100e9 : c.bandwidthBps, rttMs: c.rttMs,
      netns: veth && { source: veth.source, target: veth.target, targetHost: veth.targetHost },
      duringMigration: (nbd, stop) => moderateLoad(nbd, c.bandwidthBps, stop),
    });
    const rep = r.report;
    const steady = steadyRateBps(r.samples);
    const dataFrames = rep.wire_bytes_breakdown.data;
    const blockBytes = rep.compression.wire_bytes;
    const framing = dataFrames > 0 ? 1 - blockBytes / dataFrames : 0;
    const other = rep.wire_bytes > 0 ? (rep.wire_bytes - dataFrames) / rep.wire_bytes : 0;
    const tcp = veth ? veth.headerShare : 0;
    const linkUtil = steady / c.bandwidthBps / (1 - tcp);
    return {
      path: c.path, link: `${c.bandwidthBps / 1e6} Mbit/s ${c.rttMs} ms`, bandwidth_bps: c.bandwidthBps, rtt_ms: c.rttMs,
      goodput: +(linkUtil * (1 - tcp) * (blockBytes / Math.max(1, rep.wire_bytes))).toFixed(4),
      link_util: +linkUtil.toFixed(4), framing: +framing.toFixed(5), other_traffic: +other.toFixed(5), tcp_headers: +tcp.toFixed(4),
      window_rtt_ms: rep.link.ack_rtt_ms, time_total_s: rep.time_total_s, downtime_ms: rep.downtime_ms, verified: rep.verified,
    };
  } finally {
    veth?.remove();
  }
}
