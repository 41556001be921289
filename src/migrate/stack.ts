/**
 * The one place that wires a migration's two sides, used by the agents, the
 * simulator, the demo and the tests alike:
 *
 *   source: image → dirty tracking → cut-over gate (the VM's I/O path), and a
 *           channel feeding a SourceEngine;
 *   target: image → post-copy → gate (the VM's I/O path), and a channel
 *           feeding a TargetEngine.
 *
 * Each side comes in two halves because the agents keep the disks for the
 * whole migration but start a new channel and engine for each session (after
 * either side restarts): build…Disks once, build…Session per session.
 * build…Stack does both for a single session (simulator, test rig).
 * Everything runs on the runtime handed in (src/runtime.ts).
 */
import type { Disk } from '../block/disk.ts';
import { TrackingDisk } from '../block/filters/tracking.ts';
import { GateDisk } from '../block/filters/gate.ts';
import { PostcopyDisk, type PostcopyOptions } from '../block/filters/postcopy.ts';
import { Channel, type ChannelOptions } from '../wire/channel.ts';
import { SourceEngine, type SourceEngineOptions } from './source-engine.ts';
import { TargetEngine, type TargetEngineOptions } from './target-engine.ts';
import type { Runtime } from '../runtime.ts';

/** What the caller chooses of a session's channel (the stack supplies clock, checksum and the message handler). */
export type SessionChannelOptions<E> = Omit<ChannelOptions, 'clock' | 'frameChecksum' | 'onMessage' | 'onDisconnect'> & {
  /** The link failed or closed: the session's engine and channel, to abort or reconnect. */
  onDisconnect?: (err: Error | undefined, session: { engine: E; channel: Channel }) => void;
};

/** Parts of the runtime the engines take; the stack fills them in. */
type RuntimeParts = 'clock' | 'content' | 'codec' | 'allocBlock' | 'work' | 'cpuSeconds';

function sessionChannel<E extends { handle: ChannelOptions['onMessage'] }>(runtime: Runtime, o: SessionChannelOptions<E> | undefined, engine: () => E): Channel {
  const { onDisconnect, ...rest } = o ?? {};
  const channel: Channel = new Channel({
    ...rest,
    clock: runtime.clock,
    frameChecksum: runtime.frameChecksum,
    onMessage: (m) => engine().handle(m),
    onDisconnect: onDisconnect && ((err) => onDisconnect(err, { engine: engine(), channel })),
  });
  return channel;
}

// ---- source ----

export interface SourceDisks {
  /** The source image, read for sending (below tracking). */
  image: Disk;
  tracking: TrackingDisk;
  /** The VM's I/O path: its export serves this. */
  gate: GateDisk;
}

/** The source's VM I/O path over its image. `held` when a cut-over had begun before a restart. */
export function buildSourceDisks(o: { runtime: Runtime; image: Disk; blockSize: number; gate?: 'open' | 'held' }): SourceDisks {
  const tracking = new TrackingDisk(o.image, o.blockSize, { now: () => o.runtime.clock.now() });
  return { image: o.image, tracking, gate: new GateDisk(tracking, o.gate ?? 'open') };
}

export interface SourceSessionOptions {
  runtime: Runtime;
  disks: SourceDisks;
  channel?: SessionChannelOptions<SourceEngine>;
  engine: Omit<SourceEngineOptions, RuntimeParts | 'image' | 'tracking' | 'gate' | 'channel'>;
}

/** One session of the source: a channel and the engine it feeds (attach the channel to a link to start). */
export function buildSourceSession(o: SourceSessionOptions): { channel: Channel; engine: SourceEngine } {
  let engine!: SourceEngine;
  const channel = sessionChannel(o.runtime, o.channel, () => engine);
  const { clock, content, codec, allocBlock, work, cpuSeconds } = o.runtime;
  engine = new SourceEngine({ ...o.engine, clock, content, codec, allocBlock, work, cpuSeconds, image: o.disks.image, tracking: o.disks.tracking, gate: o.disks.gate, channel });
  return { channel, engine };
}

/** The whole source side for a single session. */
export function buildSourceStack(o: Omit<SourceSessionOptions, 'disks'> & { image: Disk }): SourceDisks & { channel: Channel; engine: SourceEngine } {
  const disks = buildSourceDisks({ runtime: o.runtime, image: o.image, blockSize: o.engine.blockSize });
  return { ...disks, ...buildSourceSession({ ...o, disks }) };
}

// ---- target ----

export interface TargetDisks {
  /** The target image wrapped for post-copy (the engine writes through it). */
  postcopy: PostcopyDisk;
  /** The VM's I/O path: its export serves this; held until the cut-over. */
  gate: GateDisk;
}

/**
 * The target's VM I/O path over its image. Post-copy reads of missing blocks
 * go to whichever engine `engine()` returns at the time (a new one per session).
 */
export function buildTargetDisks(o: { runtime: Runtime; image: Disk; blockSize: number; engine: () => TargetEngine | undefined; postcopy?: PostcopyOptions }): TargetDisks {
  const postcopy = new PostcopyDisk(o.image, o.blockSize, { fetch: (b) => o.engine()?.blockSource().fetch(b), cancel: (b) => o.engine()?.blockSource().cancel(b) }, o.runtime.clock, o.postcopy);
  return { postcopy, gate: new GateDisk(postcopy, 'held') };
}

export interface TargetSessionOptions {
  runtime: Runtime;
  disks: TargetDisks;
  channel?: SessionChannelOptions<TargetEngine>;
  engine: Omit<TargetEngineOptions, RuntimeParts | 'disk' | 'gate' | 'channel'>;
}

/** One session of the target: a channel and the engine it feeds. */
export function buildTargetSession(o: TargetSessionOptions): { channel: Channel; engine: TargetEngine } {
  let engine!: TargetEngine;
  const channel = sessionChannel(o.runtime, o.channel, () => engine);
  const { clock, content, codec, allocBlock, work, cpuSeconds } = o.runtime;
  engine = new TargetEngine({ ...o.engine, clock, content, codec, allocBlock, work, cpuSeconds, disk: o.disks.postcopy, gate: o.disks.gate, channel });
  return { channel, engine };
}

/** The whole target side for a single session. */
export function buildTargetStack(o: Omit<TargetSessionOptions, 'disks'> & { image: Disk; blockSize: number; postcopy?: PostcopyOptions }): TargetDisks & { channel: Channel; engine: TargetEngine } {
  let engine: TargetEngine | undefined;
  const disks = buildTargetDisks({ runtime: o.runtime, image: o.image, blockSize: o.blockSize, engine: () => engine, postcopy: o.postcopy });
  const session = buildTargetSession({ ...o, disks });
  engine = session.engine;
  return { ...disks, ...session };
}
