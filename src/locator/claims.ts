/**
 * In-flight claims in the Redis Cluster: "host H is fetching content C over
 * the WAN now". A target that is about to ask its source for a block first
 * claims the block's content (SET NX PX); a sibling migration that finds the
 * claim taken waits for that copy and fetches it over the LAN instead. The
 * holder renews its claims while it holds them (PEXPIRE every 2 s) and
 * releases them once the content is published in the locator, or abandons
 * one as soon as it learns the content is not coming (the block it was for
 * received other content: the VM rewrote it); a holder that dies stops
 * renewing, so its claims expire (and its waiters, seeing its replica server
 * gone, take them over sooner: claiming-content.ts). Like the locator, claims are hints: any Redis failure
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
 * A claim is given up after this long even while its holder lives and
 * receives content: a bound on any claim whose fate the holder never learns.
 */
export const MAX_HOLD_MS = 60_000;
/**
 * A claim a holder still holds while it has received nothing at all for this
 * long is presumed lost and released (a safety net: a holder learns that a
 * claimed block's content is not coming from the block receiving other
 * content, and abandons the claim then, src/migrate/local-content.ts; this
 * catches what that cannot see, e.g. a session that stalls).
 */
export const QUIET_MS = 30_000;

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
  /** Blocks of this process awaiting the content (claimed once, asked for again by another block): abandoned when none is left. */
  awaiting: number;
}

export class ClaimStore {
  /** Held claim keys (insertion order = age). */
  private readonly held = new Map<string, Held>();
  /** When this holder last received content (or, before any, first claimed). */
  private lastDelivery: number | undefined;
  private renewTimer: TimerHandle | undefined;
  private closed = false;
  private warned = false;
  readonly stats = { claimed: 0, lost: 0, released: 0, renewals: 0, failures: 0, presumedLost: 0, abandoned: 0, expired: 0 };

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
          this.held.set(keys[i]!, { since: this.o.clock.now(), awaiting: 1 });
          this.lastDelivery ??= this.o.clock.now();
          this.stats.claimed++;
          out[i] = { won: true };
        } else {
          const mine = prev === this.o.holder ? this.held.get(keys[i]!) : undefined;
          if (mine) mine.awaiting++;
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
          this.held.set(keys[i]!, { since: this.o.clock.now(), awaiting: 1 });
          this.lastDelivery ??= this.o.clock.now();
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
    if (o.delivered) this.lastDelivery = this.o.clock.now();
    const keys = [...ids].map((id) => claimKey(this.o.idFormat, blockSize, id)).filter((k) => this.held.delete(k));
    await this.releaseKeys(keys);
  }

  /**
   * A block that awaited this content received other content (the VM rewrote
   * it): the content is not coming for it. A claim no other block of this
   * process awaits is released now, so its waiters need not wait it out.
   */
  async abandon(blockSize: number, ids: Iterable<Uint8Array>): Promise<void> {
    const keys: string[] = [];
    for (const id of ids) {
      const k = claimKey(this.o.idFormat, blockSize, id);
      const h = this.held.get(k);
      if (!h || --h.awaiting > 0) continue;
      this.held.delete(k);
      keys.push(k);
    }
    this.stats.abandoned += keys.length;
    await this.releaseKeys(keys);
  }

  private async releaseKeys(keys: string[]): Promise<void> {
    if (keys.length === 0 || this.closed) return;
    try {
      // Only our own claim: one that expired and was taken by another is theirs now.
      await this.timed(Promise.all(keys.map((k) => this.o.cluster.eval(RELEASE_IF_MINE, 1, k, this.o.holder))));
      this.stats.released += keys.length;
    } catch (e) {
      this.failed(e, 'release');
    }
  }

  /** Claims presumed not coming: held QUIET_MS while this holder received nothing for as long. */
  private presumedLost(now: number): string[] {
    if (now - (this.lastDelivery ?? now) < QUIET_MS) return [];
    const lost: string[] = [];
    for (const [k, h] of this.held) {
      if (now - h.since < QUIET_MS) break;
      lost.push(k);
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
    const lost = this.presumedLost(now);
    this.stats.presumedLost += lost.length;
    const old = new Set(lost);
    for (const [k, h] of this.held) {
      if (now - h.since <= MAX_HOLD_MS) break;
      if (!old.has(k)) this.stats.expired++;
      old.add(k);
    }
    for (const k of old) this.held.delete(k);
    await this.releaseKeys([...old]);
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
