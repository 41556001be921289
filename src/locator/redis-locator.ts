/**
 * The datacenter-wide content locator: content id → (host, image, block) in a
 * Redis Cluster, shared by every target host of a datacenter (and by every
 * migration in one process: one RedisLocator serves many agents).
 *
 * Each host's LMDB replica index stays its local truth; the locator only says
 * which sibling probably holds some content. It is a hint that may be stale or
 * gone: lookups never throw (a failure answers "nowhere" and the block crosses
 * the WAN), publishing is best effort, batched and bounded. When Redis cannot
 * be reached the locator is skipped for a back-off period, and the first
 * failure is logged as a warning (later ones at debug), so a migration carries
 * on at WAN speed without a storm of lines or of timeouts.
 *
 * Entries are compact (src/locator/locator-keys.ts): hashes bucketed by an id
 * prefix. A lookup of one OFFER batch is one HMGET per bucket, all issued in
 * one tick with ioredis' auto-pipelining: one pipeline per master, so one
 * round trip.
 */
import { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.ts';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';
import {
  BUCKET_BITS_KEY, DEFAULT_BUCKET_BITS, HOST_COUNTER_KEY, HOSTS_KEY, LOCATOR_ID_BYTES, MAX_HOSTS, bucketField, bucketKey, checkBucketBits, checkIdFormat, packEntry,
  unpackEntry, type LocatorEntry,
} from './locator-keys.ts';

export interface RedisLocatorOptions {
  /** Seed nodes of the cluster: `redis://HOST:PORT` (one is enough; more survive one being down). */
  urls: string[];
  /** Names the content id format in every key (mixed formats never match). */
  idFormat: string;
  clock: Clock;
  log: Logger;
  /** A command not answered by then counts as a failure (default 1 s). */
  commandTimeoutMs?: number;
  /** After a failure the cluster is not asked again for this long (default 5 s). */
  retryAfterMs?: number;
  /** Entries waiting to be published at most; beyond, new ones are dropped and counted (default 65536). */
  maxPendingEntries?: number;
  /** Entries per publishing batch (default 2048). */
  publishBatch?: number;
  /**
   * Bucket bits (locator-keys.ts) to propose when this is the first host to
   * use the cluster; otherwise the cluster's own setting is taken (default 16).
   */
  bucketBits?: number;
}

/** A located copy: the entry and its host's address (as the host registered it). */
export interface LocatorHit {
  entry: LocatorEntry;
  hostAddress: string;
}

export interface LocatorStats {
  lookups: number;
  hits: number;
  published: number;
  droppedEntries: number;
  forgotten: number;
  failures: number;
}

/** Parses `redis://HOST:PORT` seed URLs; anything else is bad input. */
export function parseClusterUrls(text: string, flag = '--cluster'): Array<{ host: string; port: number }> {
  const out: Array<{ host: string; port: number }> = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^redis:\/\/(?:\[([^\]]+)\]|([^:/]+)):(\d+)\/?$/.exec(part);
    const port = m ? Number(m[3]) : NaN;
    if (!m || !(port > 0 && port <= 65535)) throw new UsageError(`${flag}: "${part}" is not redis://HOST:PORT`);
    out.push({ host: m[1] ?? m[2]!, port });
  }
  if (out.length === 0) throw new UsageError(`${flag}: give at least one redis://HOST:PORT`);
  return out;
}

export class RedisLocator {
  private readonly cluster: Cluster;
  private readonly hostNames = new Map<number, string>();
  private downUntil = 0;
  private warned = false;
  private pending: Array<{ blockSize: number; id: Buffer; value: Buffer }> = [];
  private publishing: Promise<void> | undefined;
  private closed = false;
  /** The cluster's bucket bits, once read (until then nothing is looked up or published). */
  private bits: number | undefined;
  private settingUp: Promise<number | undefined> | undefined;
  private firstReady: Promise<void> | undefined;
  readonly stats: LocatorStats = { lookups: 0, hits: 0, published: 0, droppedEntries: 0, forgotten: 0, failures: 0 };

  constructor(private readonly o: RedisLocatorOptions) {
    checkIdFormat(o.idFormat);
    const nodes = o.urls.flatMap((u) => parseClusterUrls(u));
    const timeout = o.commandTimeoutMs ?? 1000;
    this.cluster = new Cluster(nodes, {
      enableAutoPipelining: true,
      // Fail fast and let the WAN carry the block: a migration never waits on a sick cluster, and
      // commands never pile up in a queue while it is unreachable (see whenReady for start-up).
      enableOfflineQueue: false,
      clusterRetryStrategy: (times) => Math.min(200 * times, 2000),
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      maxRedirections: 4,
      slotsRefreshTimeout: timeout,
      redisOptions: { commandTimeout: timeout, connectTimeout: timeout, maxRetriesPerRequest: 1 },
    });
    // ioredis reports node trouble as events; what matters to us is whether commands answer.
    this.cluster.on('error', (e: Error) => o.log.debug({ err: e.message }, 'content locator: cluster client error'));
  }

  private get usable(): boolean {
    return !this.closed && this.o.clock.now() >= this.downUntil;
  }

  /** The cluster's bucket bits: set by the first host (SET NX), read by every other. Undefined while unreachable. */
  private bucketBits(): Promise<number | undefined> {
    if (this.bits !== undefined) return Promise.resolve(this.bits);
    this.settingUp ??= (async () => {
      try {
        await this.whenReady();
        await this.timed(this.cluster.set(BUCKET_BITS_KEY, String(checkBucketBits(this.o.bucketBits ?? DEFAULT_BUCKET_BITS)), 'NX'));
        const bits = checkBucketBits(Number(await this.timed(this.cluster.get(BUCKET_BITS_KEY))));
        this.bits = bits;
        return bits;
      } catch (e) {
        this.failed(e, 'setup');
        return undefined;
      } finally {
        this.settingUp = undefined;
      }
    })();
    return this.settingUp;
  }

  /**
   * Something else on this cluster client failed (the in-flight claims):
   * counted and warned about as the locator's own failures, once.
   */
  unavailable(e: unknown, what: string): void {
    this.failed(e, what);
  }

  /** A command failed: skip the cluster for a while; warn the first time only. */
  private failed(e: unknown, what: string): void {
    this.stats.failures++;
    this.downUntil = this.o.clock.now() + (this.o.retryAfterMs ?? 5000);
    const msg = (e as Error).message;
    if (!this.warned) {
      this.warned = true;
      this.o.log.warn({ err: msg, what }, 'content locator (Redis Cluster) unavailable: blocks it would find come over the WAN instead; retrying later');
    } else {
      this.o.log.debug({ err: msg, what }, 'content locator still unavailable');
    }
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    // ioredis' commandTimeout covers commands on a connection; this also covers ones queued while it reconnects.
    const ms = (this.o.commandTimeoutMs ?? 1000) * 2;
    return new Promise<T>((resolve, reject) => {
      const t = this.o.clock.setTimer(ms, () => reject(new FlimcdError(`no answer from the Redis Cluster within ${ms} ms`, ErrorCode.LOCATOR)));
      p.then((v) => { t.cancel(); resolve(v); }, (e: unknown) => { t.cancel(); reject(e instanceof Error ? e : new Error(String(e))); });
    });
  }

  /** Resolves once the client has the cluster's slot map (rejects after the command timeout). */
  private whenReady(): Promise<void> {
    if (this.cluster.status === 'ready') return Promise.resolve();
    // One listener for the client's life: after the first ready, commands themselves say whether it still is.
    this.firstReady ??= new Promise<void>((resolve) => this.cluster.once('ready', () => resolve()));
    return this.timed(this.firstReady);
  }

  /** This host's number in the cluster's host table (registered on first use). Throws when the cluster cannot be reached. */
  async registerHost(address: string): Promise<number> {
    try {
      await this.whenReady();
      const have = await this.timed(this.cluster.hget(HOSTS_KEY, address));
      if (have !== null) return Number(have);
      const next = await this.timed(this.cluster.incr(HOST_COUNTER_KEY));
      if (next > MAX_HOSTS) throw new FlimcdError(`the content locator's host table is full (${MAX_HOSTS} hosts)`, ErrorCode.LOCATOR);
      // Two hosts registering the same address at once: the first one's number wins.
      await this.timed(this.cluster.hsetnx(HOSTS_KEY, address, String(next)));
      const no = Number(await this.timed(this.cluster.hget(HOSTS_KEY, address)));
      this.hostNames.set(no, address);
      return no;
    } catch (e) {
      throw e instanceof FlimcdError ? e : new FlimcdError(`content locator: cannot register host ${address}: ${(e as Error).message}`, ErrorCode.LOCATOR, { cause: e });
    }
  }

  /**
   * Where each id's content may lie, one answer per id (undefined: nowhere
   * known, or the cluster is unavailable). One pipelined round trip.
   */
  async lookup(blockSize: number, ids: Uint8Array[]): Promise<Array<LocatorHit | undefined>> {
    const out = new Array<LocatorHit | undefined>(ids.length).fill(undefined);
    if (ids.length === 0 || !this.usable) return out;
    const bits = await this.bucketBits();
    if (bits === undefined) return out;
    this.stats.lookups += ids.length;
    const buckets = new Map<string, number[]>();
    ids.forEach((id, i) => {
      if (id.length < LOCATOR_ID_BYTES) return;
      const k = bucketKey(this.o.idFormat, blockSize, id, bits);
      const list = buckets.get(k);
      if (list) list.push(i);
      else buckets.set(k, [i]);
    });
    try {
      // All in one tick: auto-pipelining sends them as one pipeline per master.
      const answers = await this.timed(Promise.all([...buckets].map(([k, idx]) => this.cluster.hmgetBuffer(k, ...idx.map((i) => bucketField(ids[i]!, bits))))));
      const entries: Array<[number, LocatorEntry]> = [];
      [...buckets.values()].forEach((idx, j) => {
        const vals = answers[j]!;
        idx.forEach((i, n) => {
          const e = unpackEntry(vals[n]);
          if (e) entries.push([i, e]);
        });
      });
      if (entries.some(([, e]) => !this.hostNames.has(e.host))) await this.refreshHosts();
      for (const [i, e] of entries) {
        const hostAddress = this.hostNames.get(e.host);
        if (hostAddress === undefined) continue;
        out[i] = { entry: e, hostAddress };
        this.stats.hits++;
      }
    } catch (e) {
      this.failed(e, 'lookup');
      out.fill(undefined);
    }
    return out;
  }

  private async refreshHosts(): Promise<void> {
    const all = await this.timed(this.cluster.hgetall(HOSTS_KEY));
    for (const [addr, no] of Object.entries(all)) this.hostNames.set(Number(no), addr);
  }

  /**
   * Says that host `host` holds these blocks of its image `image` (numbers as
   * in that host's replica index). Queued and sent in batches; when the queue
   * is full (the cluster is slow or down) entries are dropped and counted: a
   * missing entry costs WAN bytes, never correctness.
   */
  publish(blockSize: number, host: number, image: number, entries: Iterable<{ id: Uint8Array; block: number }>): void {
    const max = this.o.maxPendingEntries ?? 65536;
    for (const e of entries) {
      if (this.closed || this.pending.length >= max || e.id.length < LOCATOR_ID_BYTES) {
        this.stats.droppedEntries++;
        continue;
      }
      this.pending.push({ blockSize, id: Buffer.from(e.id.subarray(0, LOCATOR_ID_BYTES)), value: packEntry({ host, image, block: e.block }) });
    }
    if (this.pending.length >= (this.o.publishBatch ?? 2048)) this.kick();
    else if (this.pending.length && !this.publishing) this.kickLater();
  }

  private kickTimer: ReturnType<Clock['setTimer']> | undefined;

  /** Small trickles go out after a short delay, batched. */
  private kickLater(): void {
    this.kickTimer ??= this.o.clock.setTimer(100, () => {
      this.kickTimer = undefined;
      this.kick();
    });
  }

  /** One batch at a time: the next starts when the last is answered (back-pressure). */
  private kick(): void {
    if (this.publishing || this.pending.length === 0) return;
    this.publishing = this.publishSome().finally(() => {
      this.publishing = undefined;
      if (this.pending.length) this.kick();
    });
  }

  private async publishSome(): Promise<void> {
    const batch = this.pending.splice(0, this.o.publishBatch ?? 2048);
    const bits = this.usable ? await this.bucketBits() : undefined;
    if (bits === undefined) {
      this.stats.droppedEntries += batch.length;
      return;
    }
    const byKey = new Map<string, Buffer[]>();
    for (const p of batch) {
      const key = bucketKey(this.o.idFormat, p.blockSize, p.id, bits);
      const field = bucketField(p.id, bits);
      const args = byKey.get(key);
      if (args) args.push(field, p.value);
      else byKey.set(key, [field, p.value]);
    }
    try {
      await this.timed(Promise.all([...byKey].map(([k, args]) => this.cluster.hset(k, ...args))));
      this.stats.published += batch.length;
    } catch (e) {
      this.stats.droppedEntries += batch.length;
      this.failed(e, 'publish');
    }
  }

  /** Waits until everything queued so far is published or dropped. */
  async flush(): Promise<void> {
    this.kickTimer?.cancel();
    this.kickTimer = undefined;
    while (this.pending.length || this.publishing) {
      this.kick();
      await this.publishing;
    }
  }

  /** An entry proved wrong (the sibling's block holds other content, or the sibling does not answer): drop it. */
  async forget(blockSize: number, id: Uint8Array): Promise<void> {
    const bits = this.usable && id.length >= LOCATOR_ID_BYTES ? await this.bucketBits() : undefined;
    if (bits === undefined) return;
    try {
      await this.timed(this.cluster.hdel(bucketKey(this.o.idFormat, blockSize, id, bits), bucketField(id, bits)));
      this.stats.forgotten++;
    } catch (e) {
      this.failed(e, 'forget');
    }
  }

  /** The cluster client, for measurements (MEMORY USAGE, INFO) and tests. */
  get client(): Cluster {
    return this.cluster;
  }

  /** Publishes what is queued (bounded by the command timeout) and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => {});
    this.closed = true;
    this.cluster.disconnect();
  }
}
