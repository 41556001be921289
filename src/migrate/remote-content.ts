/**
 * Content on sibling hosts of the target's datacenter: the third place a
 * target looks for a block, after its own image and replica index and before
 * the WAN. The implementation (src/locator/fleet-content.ts: a Redis Cluster
 * locator and LAN fetches from replica servers) is handed in; one can serve
 * many migrations in a process. Everything it returns is a hint: LocalContent
 * re-hashes every fetched block before use, and nothing here may throw.
 */

/** Where the locator says some content lies (opaque to the migration). */
export interface RemoteHit {
  /** For logs: the sibling's address. */
  readonly where: string;
  /**
   * A sibling is fetching this content over the WAN right now (an in-flight
   * claim, src/locator/claims.ts): the target answers "have" at once, and
   * `fetch` waits for that copy; if it fails the target asks its own source.
   */
  readonly inFlight?: boolean;
}

export interface RemoteContent {
  /** Where each id's content may lie (undefined: nowhere known). One round trip for the batch. */
  lookup(blockSize: number, ids: Uint8Array[]): Promise<Array<RemoteHit | undefined>>;
  /** Fills `into` with the block the hit names; false when it could not be had. Unverified. */
  fetch(blockSize: number, id: Uint8Array, hit: RemoteHit, into: Buffer): Promise<boolean>;
  /** The fetched bytes did not hash to the id: the entry is stale. */
  stale(blockSize: number, id: Uint8Array, hit: RemoteHit): void;
  /**
   * This host now holds these blocks of its image numbered `image` in its
   * replica index (the received blocks a target records there).
   */
  publish(blockSize: number, image: number, entries: Array<{ id: Uint8Array; offset: number }>): void;
  /**
   * Content this host looked up, found nowhere and so awaited from its source
   * is not coming after all: the block it was offered for received other
   * content. Optional (only claims care): a claim on it is released now.
   */
  abandon?(blockSize: number, ids: Uint8Array[]): void;
}
