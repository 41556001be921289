/**
 * A pair of connected in-process transports on a clock, for tests of the
 * channel, the engines and the agents' wiring: the shared link model
 * (memory-link.ts) with what a test needs, an unlimited, instant link by
 * default, and every write copied, so a test may reuse its buffers.
 */
import type { Clock } from '../util/clock.ts';
import { memoryLinkPair, type LinkModel, type MemoryLinkEnd } from './memory-link.ts';

export type { LinkModel } from './memory-link.ts';
export type MemoryTransport = MemoryLinkEnd;

export function memoryLink(clock: Clock, model: LinkModel = { bandwidthBps: Infinity, delayMs: 0 }): [MemoryTransport, MemoryTransport] {
  return memoryLinkPair(clock, model);
}
