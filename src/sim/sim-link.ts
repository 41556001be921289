/**
 * The simulator's modelled link: the shared in-process link model
 * (wire/memory-link.ts: per-direction FIFO at the bandwidth, one-way delay,
 * bounded send buffer, no loss) on the simulator's clock, without copying
 * what is written (the channel never reuses a frame's buffers). The receiver
 * gets one buffer per frame, into which only what the frame carries under
 * the content model is copied.
 */
import type { ByteTransport } from '../wire/channel.ts';
import { memoryLinkPair, type JoinWrite, type LinkModel } from '../wire/memory-link.ts';
import type { Clock } from '../util/clock.ts';
import { carriedBytes, CHECKED_PAYLOAD_BYTES } from './content-model.ts';
import { FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from '../wire/frame.ts';
import { OverlapArena } from './overlap-arena.ts';

/** A frame's leading bytes are always copied whole: the header and what the modelled checksum covers. */
const LEAD = FRAME_HEADER_SIZE + CHECKED_PAYLOAD_BYTES;

/**
 * One buffer for a frame's parts, as a socket would deliver it, copying what
 * the frame carries under the content model: a modelled block's token, not
 * its filler (content-model.ts carriedBytes), and always the leading bytes the
 * modelled frame checksum covers. The length is the real one.
 */
function joinFrame(arena: OverlapArena, parts: Buffer[], n: number): Buffer {
  // The carried bytes end where the last part with real content ends.
  let carried = 0;
  let off = 0;
  const keep: number[] = [];
  for (const p of parts) {
    const k = Math.min(p.length, Math.max(carriedBytes(p), LEAD - off));
    keep.push(k);
    if (k > 0) carried = off + k;
    off += p.length;
  }
  const out = arena.take(n, carried);
  off = 0;
  parts.forEach((p, i) => {
    p.copy(out, off, 0, keep[i]);
    off += p.length;
  });
  return out;
}

/** Bandwidth must be finite here: the simulator models a real link. */
export type SimLinkModel = LinkModel;

/** One end's frame joiner, with the arena its received frames share (overlap-arena.ts); also the fleet's shaped WAN (sim-wan.ts). */
export function frameJoiner(): JoinWrite {
  const arena = new OverlapArena(FRAME_HEADER_SIZE + MAX_FRAME_PAYLOAD);
  return (parts, n) => (parts.length === 1 ? parts[0]! : joinFrame(arena, parts, n));
}

/**
 * Loss, as the rate it leaves a TCP flow (Mathis et al. 1997:
 * rate ≈ 1.22 · MSS / (RTT · √p)), capped at the link's bandwidth. The
 * simulator models loss this way, as a slower clean link, not as dropped frames.
 */
export function lossLimitedRate(bandwidthBps: number, rttMs: number, lossRate: number): number {
  if (!(lossRate >= 0 && lossRate < 1)) throw new RangeError(`loss rate must be from 0 to below 1 (got ${lossRate})`);
  if (lossRate === 0) return bandwidthBps;
  const mss = 1460;
  return Math.min(bandwidthBps, (1.22 * mss * 8) / (Math.max(rttMs, 1) / 1000 * Math.sqrt(lossRate)));
}

export function simLink(clock: Clock, model: SimLinkModel): [ByteTransport, ByteTransport] {
  if (!(model.bandwidthBps > 0) || !Number.isFinite(model.bandwidthBps)) throw new RangeError(`link bandwidth must be a positive finite rate (got ${model.bandwidthBps})`);
  if (!(model.delayMs >= 0)) throw new RangeError(`link delay must not be negative (got ${model.delayMs})`);
  return memoryLinkPair(clock, model, { noCopy: true, joiner: frameJoiner });
}
