/**
 * In-flight claims in the Redis Cluster: "host H is fetching content C over
 * the WAN now". A target that is about to ask its source for a block first
 * claims the block's content (SET NX PX); a sibling migration that finds the
 * claim taken waits for that copy and fetches it over the LAN instead. The
 * holder renews its claims while it holds them (PEXPIRE every 2 s) and
 * releases them once the content is published in the locator; a holder that
 * dies stops renewing, so its claims expire (and its waiters, seeing its
 * replica server gone, take them over sooner: claiming-content.ts). Like the locator, claims are hints: any Redis failure
 * answers "not claimed by anyone" (the block crosses the WAN) and never throws.
 */
import type { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { LOCATOR_ID_BYTES } from './locator-keys.ts';

/**
 * A claim lives this long unless renewed. Waiters learn of a dead holder from
 * its replica server (gone: they take its claims over), so the lifetime only
 * bounds the wait when that cannot be seen; it is long enough that a living
 * holder's renewals (every RENEW_EVERY_MS) survive event-loop stalls of a
 * loaded host (at 6 s, claims of living holders expired under load average
 * 20, and their waiters fetched over the WAN).
 */
export const DEFAULT_CLAIM_TTL_MS = 20_000;
/** Held claims are renewed this often (or every third of a shorter lifetime). */
export const RENEW_EVERY_MS = 2000;
/** Claims one process holds at most; beyond, content is fetched without claiming (bounded memory and renewals). */
export const MAX_HELD_CLAIMS = 65536;
/**
 * A claim is given up after this long even while its holder lives: the block
 * it was for may never be published (the VM rewrote it before it arrived).
 */
export const MAX_HOLD_MS = 60_000;
/**
 * A holder receives what it claimed from its source in about the order it
 * claimed it (offers are answered, and lacking blocks sent, in order). A
 * claim still not delivered this long (more than a loaded host's event-loop
 * stalls, seen up to 3 s, and than the delays of a fair-shared link: at 5 s
 * the 6-VM fleet test released claims whose content was still coming, and
 * the WAN carried 1.15 of the bound) after a later claim was is presumed
 * lost (the VM rewrote that block before it was sent: the content will
 * never arrive) and released, so its waiters take the WAN now rather than
 * hold their cut-over until MAX_HOLD_MS.
 */
export const OUT_OF_ORDER_MS = 15_000;
/**
 * A claim at the tail has no later one to be overtaken by: a claim held this
 * long while nothing at all was delivered for as long is presumed lost too
 * (seen: a holder whose last claim's block was rewritten, and a sibling's
 * cut-over that waited 60 s for it).
 */
export const QUIET_MS = 15_000;
/** A taken-over claim (its block asked for on demand) not delivered within this long is presumed lost. */
export const TAKEN_OVER_HOLD_MS = 10_000;
/** Delivery marks closer together than this are merged (bounds the marks kept to OUT_OF_ORDER_MS / this). */
const MARK_EVERY_MS = 100;

export interface ClaimStoreOptions {
  cluster: Cluster;
  idFormat: string;
  /** Who holds a claim (this host's replica-server address): what a waiter logs. */
  holder: string;
  clock: Clock;
  log: Logger;
  ttlMs?: number;
  /** A command not answered by then counts as a failure (default 1 s). */
  commandTimeoutMs?: number;
  /**
   * Where failures go instead of this store's own once-only warning: the
   * locator on the same cluster (RedisLocator.unavailable), so that a Redis
   * outage is one warning for the process, not one per migration.
   */
  onFailure?: (e: unknown, what: string) => void;
}

/** The key of one content's claim; the {hashtag} spreads claims over slots as the locator's buckets do. */
export function claimKey(idFormat: string, blockSize: number, id: Uint8Array): string {
  const hex = Buffer.from(id.buffer, id.byteOffset, Math.min(id.length, LOCATOR_ID_BYTES)).toString('hex');
  return `fl:claim:${idFormat}:${blockSize / 1024}:{${hex.slice(0, 2)}}${hex.slice(2)}`;
}

export type ClaimAnswer = { won: true } | { won: false; holder: string } | { won: false; holder: undefined };

interface Held {
  since: number;
  /** Claim order; undefined for claims delivered out of the bulk order (taken over: fetched on demand). */
  seq: number | undefined;
}

export class ClaimStore {
  /** Held claim keys (insertion order = age). */
  private readonly held = new Map<string, Held>();
  private nextSeq = 0;
  /** The highest claim order delivered so far, and when it advanced (merged every MARK_EVERY_MS). */
  private readonly marks: Array<{ seq: number; at: number }> = [];
  /** Every ordered claim below this was claimed before one delivered OUT_OF_ORDER_MS ago or more. */
  private settledSeq = 0;
  /** When a claim was last delivered (or, before any, first made). */
  private lastDelivery: number | undefined;
  private renewTimer: TimerHandle | undefined;
  private closed = false;
  private warned = false;
  readonly stats = { claimed: 0, lost: 0, released: 0, renewals: 0, failures: 0, presumedLost: 0 };

  constructor(private readonly o: ClaimStoreOptions) {}

  private get ttl(): number {
    return this.o.ttlMs ?? DEFAULT_CLAIM_TTL_MS;
  }

  private failed(e: unknown, what: string): void {
    this.stats.failures++;
    if (this.o.onFailure) return this.o.onFailure(e, what);
    const msg = (e as Error).message;
    if (!this.warned) {
      this.warned = true;
      this.o.log.warn({ err: msg, what }, 'in-flight claims (Redis Cluster) unavailable: shared content may cross the WAN more than once');
    } else this.o.log.debug({ err: msg, what }, 'in-flight claims still unavailable');
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    const ms = (this.o.commandTimeoutMs ?? 1000) * 2;
    return new Promise<T>((resolve, reject) => {
      const t = this.o.clock.setTimer(ms, () => reject(new Error(`no answer from the Redis Cluster within ${ms} ms`)));
      p.then((v) => { t.cancel(); resolve(v); }, (e: unknown) => { t.cancel(); reject(e instanceof Error ? e : new Error(String(e))); });
    });
  }

  /** The client refuses commands until it has the slot map (no offline queue): wait for it, within the timeout. */
  private ready(): Promise<void> {
    const c = this.o.cluster;
    if (c.status === 'ready') return Promise.resolve();
    this.firstReady ??= new Promise<void>((resolve) => c.once('ready', () => resolve()));
    return this.timed(this.firstReady);
  }

  private firstReady: Promise<void> | undefined;

  /**
   * Tries to claim each id (one pipelined round trip). `won`: this process
   * fetches it and must release it; `holder`: someone else is fetching it;
   * `holder: undefined`: unknown (Redis failed, or too many held): fetch it.
   */
  async claim(blockSize: number, ids: Uint8Array[]): Promise<ClaimAnswer[]> {
    const out: ClaimAnswer[] = ids.map(() => ({ won: false, holder: undefined }));
    if (this.closed || ids.length === 0) return out;
    const room = MAX_HELD_CLAIMS - this.held.size;
    const ask = ids.slice(0, Math.max(0, room));
    try {
      await this.ready();
      const keys = ask.map((id) => claimKey(this.o.idFormat, blockSize, id));
      // All in one tick: ioredis auto-pipelines them, one pipeline per master.
      const answers = await this.timed(Promise.all(keys.map((k) => this.o.cluster.set(k, this.o.holder, 'PX', this.ttl, 'NX', 'GET'))));
      answers.forEach((prev, i) => {
        if (prev === null) {
          this.held.set(keys[i]!, { since: this.o.clock.now(), seq: this.nextSeq++ });
          this.lastDelivery ??= this.o.clock.now();
          this.stats.claimed++;
          out[i] = { won: true };
        } else {
          this.stats.lost++;
          out[i] = { won: false, holder: prev };
        }
      });
      this.scheduleRenew();
    } catch (e) {
      this.failed(e, 'claim');
    }
    return out;
  }

  /** Which of these ids are still claimed (by anyone); false on failure (a waiter then takes the WAN). */
  async stillClaimed(blockSize: number, ids: Uint8Array[]): Promise<boolean[]> {
    if (this.closed || ids.length === 0) return ids.map(() => false);
    try {
      await this.ready();
      const n = await this.timed(Promise.all(ids.map((id) => this.o.cluster.exists(claimKey(this.o.idFormat, blockSize, id)))));
      return n.map((x) => x > 0);
    } catch (e) {
      this.failed(e, 'exists');
      return ids.map(() => false);
    }
  }

  /**
   * Takes over the claims `deadHolder` holds on these ids (its replica server
   * is gone: it will never serve them), and claims ids nobody holds now. One
   * answer per id: `won` (this process fetches it and releases it as for
   * `claim`), or the live holder that has it now (`holder: undefined` when
   * unknown: fetch it).
   */
  async takeOver(blockSize: number, ids: Uint8Array[], deadHolder: string): Promise<ClaimAnswer[]> {
    const out: ClaimAnswer[] = ids.map(() => ({ won: false, holder: undefined }));
    if (this.closed || ids.length === 0) return out;
    const ask = ids.slice(0, Math.max(0, MAX_HELD_CLAIMS - this.held.size));
    try {
      await this.ready();
      const keys = ask.map((id) => claimKey(this.o.idFormat, blockSize, id));
      const now = await this.timed(Promise.all(keys.map((k) => this.o.cluster.eval(TAKE_OVER, 1, k, deadHolder, this.o.holder, this.ttl) as Promise<string>)));
      now.forEach((holder, i) => {
        if (holder === this.o.holder) {
          this.held.set(keys[i]!, { since: this.o.clock.now(), seq: undefined });
          this.stats.claimed++;
          out[i] = { won: true };
        } else out[i] = { won: false, holder };
      });
      this.scheduleRenew();
    } catch (e) {
      this.failed(e, 'take over');
    }
    return out;
  }

  /**
   * Content now published (`delivered`: it came from the source) or given up:
   * drop these claims if this process holds them.
   */
  async release(blockSize: number, ids: Iterable<Uint8Array>, o: { delivered?: boolean } = {}): Promise<void> {
    let top = -1;
    const keys = [...ids].map((id) => claimKey(this.o.idFormat, blockSize, id)).filter((k) => {
      const h = this.held.get(k);
      if (h?.seq !== undefined) top = Math.max(top, h.seq);
      return this.held.delete(k);
    });
    if (o.delivered && top >= 0) this.delivered(top);
    if (keys.length === 0 || this.closed) return;
    try {
      // Only our own claim: one that expired and was taken by another is theirs now.
      await this.timed(Promise.all(keys.map((k) => this.o.cluster.eval(RELEASE_IF_MINE, 1, k, this.o.holder))));
      this.stats.released += keys.length;
    } catch (e) {
      this.failed(e, 'release');
    }
  }

  /** Claim `seq` was delivered: a mark, settled OUT_OF_ORDER_MS later. */
  private delivered(seq: number): void {
    const now = this.o.clock.now();
    this.lastDelivery = now;
    const last = this.marks[this.marks.length - 1];
    if (last && seq <= last.seq) return;
    if (last && now - last.at < MARK_EVERY_MS) last.seq = seq;
    else this.marks.push({ seq, at: now });
  }

  /**
   * Claims whose content is not coming: ordered ones older than a later one
   * delivered OUT_OF_ORDER_MS ago or held QUIET_MS while nothing was
   * delivered for as long, and taken-over ones (fetched on demand,
   * answered at once) not delivered within TAKEN_OVER_HOLD_MS.
   */
  private presumedLost(now: number): string[] {
    while (this.marks.length && now - this.marks[0]!.at >= OUT_OF_ORDER_MS) this.settledSeq = Math.max(this.settledSeq, this.marks.shift()!.seq);
    const lost: string[] = [];
    const quiet = now - (this.lastDelivery ?? now) >= QUIET_MS;
    for (const [k, h] of this.held) {
      if (h.seq === undefined ? now - h.since >= TAKEN_OVER_HOLD_MS : h.seq < this.settledSeq || (quiet && now - h.since >= QUIET_MS)) lost.push(k);
    }
    return lost;
  }

  get heldCount(): number {
    return this.held.size;
  }

  private scheduleRenew(): void {
    if (this.renewTimer || this.held.size === 0 || this.closed) return;
    this.renewTimer = this.o.clock.setTimer(Math.max(50, Math.min(RENEW_EVERY_MS, Math.floor(this.ttl / 3))), () => {
      this.renewTimer = undefined;
      void this.renew().finally(() => this.scheduleRenew());
    });
  }

  private async renew(): Promise<void> {
    const now = this.o.clock.now();
    const old: string[] = this.presumedLost(now);
    this.stats.presumedLost += old.length;
    for (const [k, h] of this.held) {
      if (now - h.since <= MAX_HOLD_MS) break;
      if (h.seq !== undefined && h.seq >= this.settledSeq) old.push(k);
    }
    for (const k of old) this.held.delete(k);
    if (old.length) await this.timed(Promise.all(old.map((k) => this.o.cluster.eval(RELEASE_IF_MINE, 1, k, this.o.holder)))).catch((e: unknown) => this.failed(e, 'release'));
    const keys = [...this.held.keys()];
    if (keys.length === 0) return;
    try {
      await this.timed(Promise.all(keys.map((k) => this.o.cluster.pexpire(k, this.ttl))));
      this.stats.renewals++;
    } catch (e) {
      this.failed(e, 'renew');
    }
  }

  /** Releases every held claim (waiters then take the WAN) and stops renewing. */
  async close(): Promise<void> {
    this.renewTimer?.cancel();
    this.renewTimer = undefined;
    const keys = [...this.held.keys()];
    this.held.clear();
    if (keys.length && !this.closed) {
      await this.timed(Promise.all(keys.map((k) => this.o.cluster.eval(RELEASE_IF_MINE, 1, k, this.o.holder)))).catch((e: unknown) => this.failed(e, 'release'));
    }
    this.closed = true;
  }
}

/** KEYS[1] the claim; ARGV: the dead holder, the new holder, the lifetime (ms). Answers who holds it now. */
const TAKE_OVER = "local v = redis.call('get', KEYS[1]) if not v or v == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return ARGV[2] end return v";
const RELEASE_IF_MINE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
