/**
 * The destination datacenter's shared content state in the fleet simulation,
 * held in memory on the virtual clock instead of a Redis Cluster: the
 * locator (content → host, file, block: what src/locator/redis-locator.ts
 * keeps) and the in-flight claims (src/locator/claims.ts), with the claims'
 * rules: released when delivered, abandoned when the block they were for
 * received other content (several blocks awaiting one content: when none
 * does), taken over by the first waiter that finds one given up, and the
 * same safety nets (held QUIET_MS while its holder received nothing, or
 * MAX_HOLD_MS). A holder whose migration ended gives its claims up. Each target's view of it is a SimSiteContent, the
 * simulator's ClaimingContent: a RemoteContent handed to the real
 * LocalContent, which re-hashes every block fetched.
 *
 * Modelled: one Redis round trip (`redisRttMs`) per lookup batch, per claim
 * batch, per publish and per waiters' poll; LAN fetches on the SimLan.
 * Not modelled: Redis's own load and failures, memory per entry, replica
 * servers' TLS and CPU, holders that die (claims never expire here).
 */
import type { RemoteContent, RemoteHit } from '../migrate/remote-content.ts';
import { MAX_HOLD_MS, QUIET_MS, RENEW_EVERY_MS } from '../locator/claims.ts';
import { sleep, type Clock, type TimerHandle } from '../util/clock.ts';
import type { SimDisk } from './sim-disk.ts';
import type { SimLan } from './sim-lan.ts';

/** Where a content lies: the host, who put it there, the file and the byte offset. */
export interface Located {
  host: string;
  owner: string;
  path: string;
  offset: number;
}

interface Claim {
  holder: string;
  since: number;
  /** The holder's blocks awaiting the content: abandoned when none is left. */
  awaiting: number;
}

/** When a holder last received content (or first claimed), for the safety net. */
interface HolderState {
  lastDelivery: number | undefined;
}

/** Lookups key on the first 128 bits of an id, as the real locator and index do. */
const keyOf = (blockSize: number, id: Uint8Array) => `${blockSize}:${Buffer.from(id.buffer, id.byteOffset, 16).toString('base64')}`;

export class SimLocator {
  private readonly entries = new Map<string, Located>();
  private readonly claims = new Map<string, Claim>();
  private readonly files = new Map<string, SimDisk>();
  private readonly holders = new Map<string, HolderState>();
  private sweepTimer: TimerHandle | undefined;
  readonly stats = { entries: 0, claimed: 0, claimsLost: 0, released: 0, presumedLost: 0, abandoned: 0, takenOver: 0, givenUp: 0, stale: 0 };

  constructor(private readonly clock: Clock) {}

  /** A file some host serves (a template at a store host, a target image): paths are unique over the datacenter. */
  addFile(path: string, disk: SimDisk): void {
    this.files.set(path, disk);
  }

  file(path: string): SimDisk | undefined {
    return this.files.get(path);
  }

  /** First location of a content wins, as in the real locator. */
  publish(blockSize: number, at: Omit<Located, 'offset'>, entries: Array<{ id: Uint8Array; offset: number }>): void {
    for (const e of entries) {
      const k = keyOf(blockSize, e.id);
      if (this.entries.has(k)) continue;
      this.entries.set(k, { ...at, offset: e.offset });
      this.stats.entries++;
    }
  }

  find(blockSize: number, id: Uint8Array): Located | undefined {
    return this.entries.get(keyOf(blockSize, id));
  }

  forget(blockSize: number, id: Uint8Array): void {
    if (this.entries.delete(keyOf(blockSize, id))) this.stats.stale++;
  }

  /** SET NX: won, or who holds it. */
  claim(blockSize: number, id: Uint8Array, holder: string): { won: true } | { won: false; holder: string } {
    const k = keyOf(blockSize, id);
    const c = this.claims.get(k);
    if (c) {
      this.stats.claimsLost++;
      if (c.holder === holder) c.awaiting++;
      return { won: false, holder: c.holder };
    }
    this.claims.set(k, { holder, since: this.clock.now(), awaiting: 1 });
    this.holder(holder).lastDelivery ??= this.clock.now();
    this.stats.claimed++;
    this.scheduleSweep();
    return { won: true };
  }

  stillClaimed(blockSize: number, id: Uint8Array): boolean {
    return this.claims.has(keyOf(blockSize, id));
  }

  /** `holder` published these (delivered) contents: its claims on them go. */
  release(blockSize: number, ids: Iterable<Uint8Array>, holder: string): void {
    this.holder(holder).lastDelivery = this.clock.now();
    for (const id of ids) {
      const k = keyOf(blockSize, id);
      if (this.claims.get(k)?.holder !== holder) continue;
      this.claims.delete(k);
      this.stats.released++;
    }
  }

  /** A block of `holder` that awaited these received other content (ClaimStore.abandon). */
  abandon(blockSize: number, ids: Iterable<Uint8Array>, holder: string): void {
    for (const id of ids) {
      const k = keyOf(blockSize, id);
      const c = this.claims.get(k);
      if (c?.holder !== holder || --c.awaiting > 0) continue;
      this.claims.delete(k);
      this.stats.abandoned++;
    }
  }

  /** The claim if nobody holds it or `from` still does (ClaimStore.takeOver): who holds it now. */
  takeOver(blockSize: number, id: Uint8Array, from: string, holder: string): string {
    const k = keyOf(blockSize, id);
    const c = this.claims.get(k);
    if (c && c.holder !== from) return c.holder;
    this.claims.set(k, { holder, since: this.clock.now(), awaiting: 1 });
    this.holder(holder).lastDelivery ??= this.clock.now();
    this.stats.takenOver++;
    this.scheduleSweep();
    return holder;
  }

  /** The holder's migration ended: what it still claims is not coming. */
  releaseAll(holder: string): void {
    for (const [k, c] of this.claims) {
      if (c.holder !== holder) continue;
      this.claims.delete(k);
      this.stats.givenUp++;
    }
    this.holders.delete(holder);
  }

  close(): void {
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
  }

  private holder(name: string): HolderState {
    let h = this.holders.get(name);
    if (!h) {
      h = { lastDelivery: undefined };
      this.holders.set(name, h);
    }
    return h;
  }

  /** Claims are checked as often as real holders renew theirs. */
  private scheduleSweep(): void {
    if (this.sweepTimer || this.claims.size === 0) return;
    this.sweepTimer = this.clock.setTimer(RENEW_EVERY_MS, () => {
      this.sweepTimer = undefined;
      this.sweep();
      this.scheduleSweep();
    });
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [k, c] of this.claims) {
      const h = this.holder(c.holder);
      const quiet = now - (h.lastDelivery ?? now) >= QUIET_MS;
      if ((quiet && now - c.since >= QUIET_MS) || now - c.since > MAX_HOLD_MS) {
        this.claims.delete(k);
        this.stats.presumedLost++;
      }
    }
  }
}

interface SiteHit extends RemoteHit {
  located?: Located;
}

interface Waiter {
  id: Uint8Array;
  /** Who fetches it: a waiter that finds the claim given up takes it over from them. */
  holder: string;
  since: number;
  done: Array<(l: Located | undefined) => void>;
}

export interface SimSiteOptions {
  locator: SimLocator;
  lan: SimLan;
  clock: Clock;
  /** This target's host (LAN fetches from it are free). */
  host: string;
  /** This target (a claim holder; what it publishes is named after it). */
  self: string;
  /** The host index's image numbers → paths (what LocalContent publishes names an image by number). */
  imagePath: (no: number) => string | undefined;
  /** In-flight claims (false: the locator alone; shared content may cross the WAN more than once). */
  claims: boolean;
  /** One Redis round trip, ms (default 0.2). */
  redisRttMs?: number;
  /** How often waiters look for the holder's copy (default 100 ms, as ClaimingContent). */
  pollMs?: number;
  /** A waiter gives up after this long (default 120 s, as ClaimingContent). */
  maxWaitMs?: number;
}

/** One target's view of the datacenter: locator lookups, claims, LAN fetches, publishing. */
export class SimSiteContent implements RemoteContent {
  private readonly waiting = new Map<string, Waiter>();
  private pollTimer: TimerHandle | undefined;
  private closed = false;
  readonly stats = { claimedWan: 0, waitedFor: 0, waitedFound: 0, waitedGaveUp: 0, lanHits: 0, takenOver: 0 };

  constructor(private readonly o: SimSiteOptions) {}

  private rtt(): Promise<void> {
    return sleep(this.o.clock, this.o.redisRttMs ?? 0.2);
  }

  async lookup(blockSize: number, ids: Uint8Array[]): Promise<Array<RemoteHit | undefined>> {
    const { locator, self } = this.o;
    await this.rtt();
    const out: Array<SiteHit | undefined> = ids.map((id) => {
      const l = locator.find(blockSize, id);
      return l && l.owner !== self ? { where: l.host, located: l } : undefined;
    });
    const missing = ids.map((_, i) => i).filter((i) => !out[i]);
    this.stats.lanHits += ids.length - missing.length;
    if (!this.o.claims || missing.length === 0 || this.closed) return out;
    await this.rtt();
    const won: number[] = [];
    for (const i of missing) {
      const a = locator.claim(blockSize, ids[i]!, self);
      if (a.won) won.push(i);
      else if (a.holder !== self) out[i] = { where: a.holder, inFlight: true };
    }
    if (won.length) {
      // A holder may have published and released between the lookup and the claim.
      await this.rtt();
      const found: Uint8Array[] = [];
      for (const i of won) {
        const l = locator.find(blockSize, ids[i]!);
        if (l && l.owner !== self) {
          out[i] = { where: l.host, located: l };
          found.push(ids[i]!);
        }
      }
      locator.release(blockSize, found, self);
      this.stats.claimedWan += won.length - found.length;
      this.stats.lanHits += found.length;
    }
    return out;
  }

  async fetch(blockSize: number, id: Uint8Array, hit: RemoteHit, into: Buffer): Promise<boolean> {
    const located = hit.inFlight ? await this.waitFor(blockSize, id, hit.where) : (hit as SiteHit).located;
    if (!located) return false;
    const disk = this.o.locator.file(located.path);
    if (!disk || located.offset + into.length > disk.size) return false;
    await this.o.lan.transfer(located.host, this.o.host, into.length);
    await disk.read(located.offset, into);
    return true;
  }

  stale(blockSize: number, id: Uint8Array): void {
    this.o.locator.forget(blockSize, id);
  }

  abandon(blockSize: number, ids: Uint8Array[]): void {
    if (this.o.claims) this.o.locator.abandon(blockSize, ids, this.o.self);
  }

  publish(blockSize: number, image: number, entries: Array<{ id: Uint8Array; offset: number }>): void {
    const path = this.o.imagePath(image);
    if (path === undefined) return;
    void this.rtt().then(() => {
      this.o.locator.publish(blockSize, { host: this.o.host, owner: this.o.self, path }, entries);
      // Released once visible: a waiter that sees the claim gone then finds the entry.
      this.o.locator.release(blockSize, entries.map((e) => e.id), this.o.self);
    });
  }

  /** This target's migration ended: its claims are given up, its waiters take the WAN. */
  close(): void {
    this.closed = true;
    this.pollTimer?.cancel();
    this.pollTimer = undefined;
    for (const k of [...this.waiting.keys()]) this.settle(k, undefined);
    this.o.locator.releaseAll(this.o.self);
  }

  private waitFor(blockSize: number, id: Uint8Array, holder: string): Promise<Located | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    this.stats.waitedFor++;
    return new Promise((resolve) => {
      const k = keyOf(blockSize, id);
      const w = this.waiting.get(k);
      if (w) w.done.push(resolve);
      else this.waiting.set(k, { id: Buffer.from(id), holder, since: this.o.clock.now(), done: [resolve] });
      this.schedulePoll(blockSize);
    });
  }

  private settle(k: string, l: Located | undefined): void {
    const w = this.waiting.get(k);
    if (!w) return;
    this.waiting.delete(k);
    if (l) this.stats.waitedFound++;
    else this.stats.waitedGaveUp++;
    for (const d of w.done) d(l);
  }

  /** All waiters polled together: one claim check and one lookup round trip per poll. */
  private schedulePoll(blockSize: number): void {
    if (this.pollTimer || this.waiting.size === 0 || this.closed) return;
    this.pollTimer = this.o.clock.setTimer(this.o.pollMs ?? 100, () => {
      void this.poll(blockSize).finally(() => {
        this.pollTimer = undefined;
        this.schedulePoll(blockSize);
      });
    });
  }

  private async poll(blockSize: number): Promise<void> {
    const { locator, self } = this.o;
    await this.rtt();
    const claimed = new Map([...this.waiting].map(([k, w]) => [k, locator.stillClaimed(blockSize, w.id)]));
    await this.rtt();
    const now = this.o.clock.now();
    for (const [k, w] of [...this.waiting]) {
      const l = locator.find(blockSize, w.id);
      if (l && l.owner !== self) this.settle(k, l);
      else if (now - w.since > (this.o.maxWaitMs ?? 120_000)) this.settle(k, undefined);
      else if (claimed.get(k) === false) {
        // Given up by its holder: the first waiter takes it over (and asks its source), the others wait for that copy.
        const now = locator.takeOver(blockSize, w.id, w.holder, self);
        if (now === self) {
          this.stats.takenOver++;
          this.settle(k, undefined);
        } else w.holder = now;
      }
    }
  }
}
