import type { ReplicaIndex, IndexedImage } from '../replica-index/replica-index.ts';
import type { RedisLocator } from './redis-locator.ts';

/** Entries handed to the locator per publish call (it batches and bounds them itself). */
const CHUNK = 4096;

/**
 * `flimcd index add --cluster`: tells the datacenter's locator that this host
 * (its replica server at `hostAddress`) holds every block the replica index
 * has for `image`. Throws when the cluster cannot be reached at all; returns
 * how many entries were published and how many were dropped.
 */
export async function publishIndexedImage(locator: RedisLocator, index: ReplicaIndex, image: IndexedImage, hostAddress: string): Promise<{ published: number; dropped: number }> {
  const host = await locator.registerHost(hostAddress);
  const before = { ...locator.stats };
  let chunk: Array<{ id: Buffer; block: number }> = [];
  for (const e of index.entriesOf(image)) {
    chunk.push({ id: e.id, block: Math.floor(e.offset / image.blockSize) });
    if (chunk.length >= CHUNK) {
      locator.publish(image.blockSize, host, image.no, chunk);
      chunk = [];
      // Back-pressure: the locator's queue is bounded; wait for it rather than drop.
      await locator.flush();
    }
  }
  locator.publish(image.blockSize, host, image.no, chunk);
  await locator.flush();
  return { published: locator.stats.published - before.published, dropped: locator.stats.droppedEntries - before.droppedEntries };
}
