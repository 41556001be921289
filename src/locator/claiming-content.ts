/**
 * Sibling hosts' content with in-flight claims (src/locator/claims.ts): what
 * a target in a fleet uses so that content several migrations of a group
 * need crosses the WAN once. For each offered id the target's own host lacks:
 *
 *   1. the locator (one pipelined round trip): a sibling holds it → LAN fetch;
 *   2. else a claim (SET NX PX, one round trip): won → this target asks its
 *      source (the WAN) and releases the claim once the block is published;
 *      lost → the hit is "in flight": the engine answers HAVE at once and
 *      `fetch` waits until the holder's copy appears in the locator, then
 *      takes it over the LAN. If the claim vanishes first (the holder died or
 *      gave up) `fetch` fails and the engine asks its own source.
 *   3. Claims won are checked against the locator once more (a holder may
 *      have published and released between steps 1 and 2).
 *
 * A claim whose content turns out not to be coming (`abandon`: its block
 * received other content) is released at once. A waiter that sees a claim
 * gone with no copy published takes the claim over (as from a dead holder):
 * the first such waiter fetches the content from its own source and the
 * others wait for that copy, so it still crosses the WAN once.
 *
 * Waiters are polled together (one locator lookup and one EXISTS pipeline per
 * poll), bounded in number and in time. Lookups, LAN fetches and publishing
 * are a FleetContent's; this adds only the claims.
 */
import type { Logger } from 'pino';
import type { RemoteContent, RemoteHit } from '../migrate/remote-content.ts';
import { FleetContent, type FleetContentOptions } from './fleet-content.ts';
import type { ClaimStore } from './claims.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';

interface Waiter {
  blockSize: number;
  id: Uint8Array;
  /** Who fetches it (its replica server's address): watched, so that its death ends the wait at once. */
  holder: string;
  since: number;
  done: Array<(hit: RemoteHit | undefined) => void>;
}

export interface ClaimingContentOptions extends FleetContentOptions {
  claims: ClaimStore;
  /** This host's replica server as siblings reach it (tcp:HOST:PORT): named in what it publishes. */
  selfAddress: string;
  clock: Clock;
  log: Logger;
  /** How often waiters look for the holder's copy (default 100 ms). */
  pollMs?: number;
  /** A waiter gives up (the block crosses the WAN) after this long (default 120 s). */
  maxWaitMs?: number;
  /** Waiting blocks at most; beyond, an in-flight block is fetched from the source (default 16384). */
  maxWaiters?: number;
}

const keyOf = (blockSize: number, id: Uint8Array) => `${blockSize}:${Buffer.from(id).toString('hex')}`;

export class ClaimingContent implements RemoteContent {
  /** Where siblings' copies are found, fetched from and published: all but the claims. */
  private readonly sites: FleetContent;
  private readonly waiting = new Map<string, Waiter>();
  private pollTimer: TimerHandle | undefined;
  private closed = false;
  readonly stats = { claimedWan: 0, waitedFor: 0, waitedFound: 0, waitedGaveUp: 0, lanHits: 0, holderGone: 0, claimGone: 0, takenOver: 0, waitedMs: 0, waitedMaxMs: 0 };

  constructor(private readonly o: ClaimingContentOptions) {
    this.sites = new FleetContent(o);
  }

  async lookup(blockSize: number, ids: Uint8Array[]): Promise<Array<RemoteHit | undefined>> {
    const out = await this.sites.lookup(blockSize, ids);
    const missing = ids.map((_, i) => i).filter((i) => !out[i]);
    this.stats.lanHits += ids.length - missing.length;
    if (missing.length === 0 || this.closed) return out;
    const answers = await this.o.claims.claim(blockSize, missing.map((i) => ids[i]!));
    const won: number[] = [];
    answers.forEach((a, k) => {
      const i = missing[k]!;
      if (a.won) won.push(i);
      else if (a.holder !== undefined && a.holder !== this.o.selfAddress && this.waiting.size < (this.o.maxWaiters ?? 16384)) out[i] = { where: a.holder, inFlight: true };
    });
    if (won.length) {
      // A holder may have published and released between the lookup and our claim.
      const again = await this.sites.lookup(blockSize, won.map((i) => ids[i]!));
      const found = won.filter((_, k) => again[k]);
      won.forEach((i, k) => { if (again[k]) out[i] = again[k]; });
      if (found.length) void this.o.claims.release(blockSize, found.map((i) => ids[i]!));
      this.stats.claimedWan += won.length - found.length;
      this.stats.lanHits += found.length;
    }
    return out;
  }

  async fetch(blockSize: number, id: Uint8Array, hit: RemoteHit, into: Buffer): Promise<boolean> {
    const located = hit.inFlight ? await this.waitFor(blockSize, id, hit.where) : hit;
    return located ? this.sites.fetch(blockSize, id, located, into) : false;
  }

  stale(blockSize: number, id: Uint8Array): void {
    this.sites.stale(blockSize, id);
  }

  abandon(blockSize: number, ids: Uint8Array[]): void {
    void this.o.claims.abandon(blockSize, ids);
  }

  publish(blockSize: number, image: number, entries: Array<{ id: Uint8Array; offset: number }>): void {
    // Released only once the entries are visible: a waiter that sees the claim gone then finds the entry.
    void this.sites.publishEntries(blockSize, image, entries, true).then(() => this.o.claims.release(blockSize, entries.map((e) => e.id), { delivered: true }));
  }

  /** Waits until the content appears in the locator (resolves its hit), or the claim is gone or too old (undefined). */
  private waitFor(blockSize: number, id: Uint8Array, holder: string): Promise<RemoteHit | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    this.stats.waitedFor++;
    // Starts watching the holder's replica server (a connection), if not yet.
    this.o.client.isDown(holder);
    return new Promise((resolve) => {
      const k = keyOf(blockSize, id);
      const w = this.waiting.get(k);
      if (w) w.done.push(resolve);
      else this.waiting.set(k, { blockSize, id: Buffer.from(id), holder, since: this.o.clock.now(), done: [resolve] });
      this.schedulePoll();
    });
  }

  private schedulePoll(): void {
    if (this.pollTimer || this.waiting.size === 0 || this.closed) return;
    this.pollTimer = this.o.clock.setTimer(this.o.pollMs ?? 100, () => {
      void this.poll().finally(() => {
        this.pollTimer = undefined;
        this.schedulePoll();
      });
    });
  }

  private settle(k: string, hit: RemoteHit | undefined): void {
    const w = this.waiting.get(k);
    if (!w) return;
    this.waiting.delete(k);
    const waited = this.o.clock.now() - w.since;
    this.stats.waitedMs += waited;
    this.stats.waitedMaxMs = Math.max(this.stats.waitedMaxMs, waited);
    if (hit) this.stats.waitedFound++;
    else this.stats.waitedGaveUp++;
    for (const d of w.done) d(hit);
  }

  private async poll(): Promise<void> {
    const bySize = new Map<number, Array<[string, Waiter]>>();
    for (const e of this.waiting) {
      const list = bySize.get(e[1].blockSize);
      if (list) list.push(e);
      else bySize.set(e[1].blockSize, [e]);
    }
    const now = this.o.clock.now();
    for (const [bs, list] of bySize) {
      const ids = list.map(([, w]) => w.id);
      // EXISTS before the lookup: a holder publishes before it releases, so "gone" then "not found" means given up.
      const claimed = await this.o.claims.stillClaimed(bs, ids);
      const hits = await this.sites.lookup(bs, ids);
      const orphans = new Map<string, Array<[string, Waiter]>>();
      const orphan = (w: Waiter, e: [string, Waiter]) => orphans.set(w.holder, [...(orphans.get(w.holder) ?? []), e]);
      list.forEach(([k, w], i) => {
        if (hits[i]) this.settle(k, hits[i]);
        else if (now - w.since > (this.o.maxWaitMs ?? 120_000)) this.settle(k, undefined);
        else if (!claimed[i]) {
          // Given up by its holder (abandoned or presumed lost): one waiter takes it over, the others wait for that copy.
          this.stats.claimGone++;
          orphan(w, [k, w]);
        } else if (this.o.client.isDown(w.holder)) {
          this.stats.holderGone++;
          orphan(w, [k, w]);
        }
      });
      for (const [holder, of] of orphans) await this.adopt(bs, holder, of);
    }
  }

  /**
   * Waiters whose holder's replica server is gone (the holder died, or cannot
   * serve what it fetches) or whose holder gave the claim up: rather than all
   * fetch it, take the claims over: one sibling (the first to ask) fetches
   * each over the WAN (its wait ends now, and the engine asks its own source)
   * while the others wait for that copy instead, so the content still crosses
   * the WAN once.
   */
  private async adopt(blockSize: number, deadHolder: string, orphans: Array<[string, Waiter]>): Promise<void> {
    const answers = await this.o.claims.takeOver(blockSize, orphans.map(([, w]) => w.id), deadHolder);
    const won = orphans.filter((_, i) => answers[i]!.won);
    // A claim found free may be one its holder released after publishing since this poll's lookup: look once more.
    const again = won.length ? await this.sites.lookup(blockSize, won.map(([, w]) => w.id)) : [];
    const found = new Map(won.map(([k], j) => [k, again[j]]));
    const foundIds = won.filter(([k]) => found.get(k)).map(([, w]) => w.id);
    if (foundIds.length) void this.o.claims.release(blockSize, foundIds);
    orphans.forEach(([k, w], i) => {
      const a = answers[i]!;
      const hit = found.get(k);
      if (hit) this.settle(k, hit);
      else if (a.won) {
        this.stats.takenOver++;
        this.settle(k, undefined);
      } else if (a.holder !== undefined && a.holder !== this.o.selfAddress && a.holder !== w.holder) w.holder = a.holder;
      else this.settle(k, undefined);
    });
  }

  /** Waiters give up (their blocks cross the WAN); held claims are released. */
  async close(): Promise<void> {
    this.closed = true;
    this.pollTimer?.cancel();
    this.pollTimer = undefined;
    for (const k of [...this.waiting.keys()]) this.settle(k, undefined);
    await this.o.claims.close();
  }
}
