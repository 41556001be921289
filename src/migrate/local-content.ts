import type { Logger } from 'pino';
import type { Disk } from '../block/disk.ts';
import { FileDisk } from '../block/file.ts';
import { Bitmap } from '../util/bitmap.ts';
import type { ContentIndex, IndexedFormat, IndexedImage } from '../replica-index/replica-index.ts';
import { openImage } from '../image/open-image.ts';
import type { ContentModel } from '../content/content-id.ts';
import type { RemoteContent, RemoteHit } from './remote-content.ts';

/**
 * Most content ids remembered for blocks received in this migration (about 120 bytes each with the
 * block → id map: at most ~120 MiB, so the target stays within 512 MiB on a terabyte image).
 */
const MAX_RECEIVED_IDS = 1_000_000;
/** Replica files kept open at once. */
const MAX_OPEN_FILES = 16;
/** Received-block entries written to the persistent index per transaction. */
const RECORD_BATCH = 1024;
/** Blocks whose content is awaited from the source after a sibling lookup found nothing (see `expecting`). */
const MAX_EXPECTING = 65536;

export type Found = 'same' | 'received' | 'replica' | 'lan';

/** Lookups use the first 128 bits of an id (what OFFER carries); REF carries all 256. */
export const LOOKUP_ID_BYTES = 16;
const lookupKey = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, LOOKUP_ID_BYTES).toString('base64');

/** Does this block's content have this id (or id prefix)? Always re-hashed: locations are hints. */
function matches(content: ContentModel, block: Buffer, id: Uint8Array): boolean {
  const full = content.id(block);
  return full.subarray(0, id.length).equals(id);
}

export interface LocalContentOptions {
  /** The target image (below the post-copy filter: raw local reads and writes). */
  image: Disk;
  imagePath: string;
  blockSize: number;
  /** The runtime's content ids (src/runtime.ts): what a candidate is re-hashed with. */
  content: ContentModel;
  /** The image existed before this migration with content: its blocks may already be right. */
  preexisting: boolean;
  index?: ContentIndex;
  /** Opens a replica file the index points into, read-only (default FileDisk; the simulator hands out modelled images). */
  openReplica?: (path: string) => Promise<Disk>;
  /** Sibling hosts' content (datacenter-wide locator, LAN fetch); received blocks recorded in `index` are published to it. */
  remote?: RemoteContent;
  log: Logger;
}

/**
 * What the target can produce without the WAN: its own image as it was before
 * the migration (migrate-back onto an old copy), blocks received earlier in
 * this migration, and the replica index. Every candidate is re-hashed before
 * it is trusted; a wrong index entry is dropped.
 */
export class LocalContent {
  /** Blocks written by this migration (their old content is gone). */
  private readonly touched: Bitmap;
  /**
   * Block → the id the source offered for it, looked up at siblings and found nowhere: this
   * migration may hold the datacenter's claim on that content (src/locator/claims.ts). When the
   * block then receives other content (the VM rewrote it at the source, or here) the claimed
   * content is not coming: the claim is abandoned at once, so siblings waiting for it need not.
   */
  private readonly expecting = new Map<number, Uint8Array>();
  private readonly byId = new Map<string, number>();
  private readonly idOf = new Map<number, string>();
  /** Open replica files; concurrent readers of one path share one open, and an evicted file closes after its last reader. */
  private readonly files = new Map<string, ReplicaFile>();
  private pendingRecords: Array<{ id: Uint8Array; offset: number }> = [];
  private recordImage: Promise<IndexedImage> | undefined;
  private recording: Promise<unknown> = Promise.resolve();
  private recordQueued = false;
  readonly stats = { same: 0, received: 0, replica: 0, lookups: 0, staleEntries: 0, misses: 0, lan: 0, lanBytes: 0, lanStale: 0, lanFailed: 0 };

  constructor(private readonly o: LocalContentOptions) {
    this.touched = new Bitmap(Math.ceil(o.image.size / o.blockSize));
  }

  /** Worth offering ids to this target at all? */
  get hasCandidates(): boolean {
    return this.o.preexisting || this.o.remote !== undefined || (this.o.index?.blockCount(this.o.blockSize) ?? 0) > 0;
  }

  /**
   * Starts one lookup at sibling hosts for a batch of offered ids, leaving
   * out those this host's index or this migration already has. Undefined
   * without a remote; each answer settles (never rejects).
   */
  lookupRemote(blocks: ArrayLike<number>, ids: Uint8Array[]): Array<Promise<RemoteHit | undefined>> | undefined {
    const remote = this.o.remote;
    if (!remote) return undefined;
    const ask = ids.map((id, i) => [id, i] as const).filter(([id]) => this.receivedBlock(id) === undefined && !this.o.index?.lookup(this.o.blockSize, id));
    const answers = ask.length ? remote.lookup(this.o.blockSize, ask.map(([id]) => id)).catch(() => []) : Promise.resolve([]);
    if (remote.abandon) void answers.then((a) => ask.forEach(([id, i], k) => { if (!a[k]) this.expect(blocks[i]!, id); }));
    const slot = new Map(ask.map(([, i], k) => [i, k]));
    return ids.map((_, i) => {
      const k = slot.get(i);
      return k === undefined ? Promise.resolve(undefined) : answers.then((a) => a[k]);
    });
  }

  /** Block `b` awaits content `id` from the source (bounded: past MAX_EXPECTING a claim is left to its safety nets). */
  private expect(b: number, id: Uint8Array): void {
    if (!this.o.remote?.abandon) return;
    if (this.expecting.size < MAX_EXPECTING || this.expecting.has(b)) this.expecting.set(b, Buffer.from(id));
  }

  /** Block `b` now holds `id` (undefined: other or unknown content): a claim on other content it awaited is abandoned. */
  private settleExpected(b: number, id: Uint8Array | undefined): void {
    const awaited = this.expecting.get(b);
    if (awaited === undefined) return;
    this.expecting.delete(b);
    if (id && Buffer.compare(awaited, id.subarray(0, awaited.length)) === 0) return;
    this.o.remote?.abandon?.(this.o.blockSize, [awaited]);
  }

  /**
   * Fetches content `id` for block `b` from the sibling the locator named, into `into`; true only
   * when it re-hashes to `id`. On failure block `b` is asked of the source, which may make this
   * migration the content's claim holder (a waiter that took the claim over): it is then awaited.
   */
  async fetchRemote(b: number, id: Uint8Array, hit: RemoteHit, into: Buffer): Promise<boolean> {
    const remote = this.o.remote;
    if (!remote) return false;
    const got = await remote.fetch(this.o.blockSize, id, hit, into).catch(() => false);
    if (!got) {
      this.stats.lanFailed++;
      this.expect(b, id);
      return false;
    }
    if (!matches(this.o.content, into, id)) {
      this.stats.lanStale++;
      this.o.log.debug({ where: hit.where }, 'a block fetched from a sibling host is not the content the locator named; dropped');
      remote.stale(this.o.blockSize, id, hit);
      this.expect(b, id);
      return false;
    }
    this.stats.lan++;
    this.stats.lanBytes += into.length;
    return true;
  }

  /** Block `b` of the target image now holds content `id` (received or materialised). */
  noteWritten(b: number, id: Uint8Array | undefined): void {
    this.touched.set(b);
    if (this.expecting.size) this.settleExpected(b, id);
    const old = this.idOf.get(b);
    if (old !== undefined) {
      if (this.byId.get(old) === b) this.byId.delete(old);
      this.idOf.delete(b);
    }
    if (!id) return;
    const key = lookupKey(id);
    if (this.byId.size < MAX_RECEIVED_IDS && !this.byId.has(key)) {
      this.byId.set(key, b);
      this.idOf.set(b, key);
    }
    if (this.o.index) {
      this.pendingRecords.push({ id: Buffer.from(id), offset: b * this.o.blockSize });
      if (this.pendingRecords.length >= RECORD_BATCH) this.flushRecords();
      else if (this.o.remote) this.recordSoon();
    }
  }

  /** Blocks [first, first + count) are zero now (holes): per remembered block, not per block of the range. */
  noteZeroed(first: number, count: number): void {
    this.touched.setRange(first, count);
    const end = first + count;
    if (this.expecting.size) {
      if (count <= this.expecting.size) for (let b = first; b < end; b++) this.settleExpected(b, undefined);
      else for (const b of [...this.expecting.keys()]) if (b >= first && b < end) this.settleExpected(b, undefined);
    }
    const forget = (b: number, key: string) => {
      if (this.byId.get(key) === b) this.byId.delete(key);
      this.idOf.delete(b);
    };
    if (count <= this.idOf.size) {
      for (let b = first; b < end; b++) {
        const key = this.idOf.get(b);
        if (key !== undefined) forget(b, key);
      }
    } else {
      for (const [b, key] of this.idOf) if (b >= first && b < end) forget(b, key);
    }
  }

  /** The VM changed block `b` here: content remembered for it is no longer there. */
  noteChanged(b: number): void {
    this.noteWritten(b, undefined);
  }

  /** Which block of the target image holds this content (received earlier in this migration), if any. */
  receivedBlock(id: Uint8Array): number | undefined {
    return this.byId.get(lookupKey(id));
  }

  /**
   * Tries to produce content `id` for block `b` from local sources other than
   * blocks received in this migration (those need ordering, see the engine).
   * On success `into` holds the bytes and the return says where they came
   * from; 'same' means block `b` already holds them (nothing to write).
   */
  async findLocal(b: number, id: Uint8Array, into: Buffer): Promise<Found | undefined> {
    this.stats.lookups++;
    const { image, blockSize } = this.o;
    if (this.o.preexisting && !this.touched.get(b)) {
      await image.read(b * blockSize, into);
      if (matches(this.o.content, into, id)) {
        this.stats.same++;
        return 'same';
      }
    }
    const index = this.o.index;
    if (index) {
      const loc = index.lookup(blockSize, id);
      if (loc) {
        const ok = await this.readReplica(loc.path, loc.offset, into, loc.format).catch(() => false);
        if (ok && matches(this.o.content, into, id)) {
          this.stats.replica++;
          return 'replica';
        }
        // The file changed (or vanished) since it was indexed.
        this.stats.staleEntries++;
        this.o.log.debug({ path: loc.path, offset: loc.offset }, 'replica index entry is stale; dropped');
        await index.forget(blockSize, id);
      }
    }
    this.stats.misses++;
    return undefined;
  }

  /** Reads block `c` of the target image and checks it still holds `id`. */
  async readReceived(c: number, id: Uint8Array, into: Buffer): Promise<boolean> {
    await this.o.image.read(c * this.o.blockSize, into);
    const ok = matches(this.o.content, into, id);
    if (ok) this.stats.received++;
    else this.stats.staleEntries++;
    return ok;
  }

  private async readReplica(path: string, offset: number, into: Buffer, format: IndexedFormat = 'raw'): Promise<boolean> {
    if (path === this.o.imagePath) {
      // Our own image, indexed in an earlier run: only trust blocks this migration did not overwrite.
      const c = offset / this.o.blockSize;
      if (!Number.isInteger(c) || this.touched.get(c)) return false;
      if (offset + into.length > this.o.image.size) return false;
      await this.o.image.read(offset, into);
      return true;
    }
    let f = this.files.get(path);
    if (!f) {
      if (this.files.size >= MAX_OPEN_FILES) {
        const [oldPath, old] = this.files.entries().next().value as [string, ReplicaFile];
        this.files.delete(oldPath);
        old.evicted = true;
        if (old.readers === 0) await closeReplica(old);
      }
      f = { disk: this.o.openReplica ? this.o.openReplica(path) : openReplicaFile(path, format, this.o.log), readers: 0, evicted: false };
      this.files.set(path, f);
    }
    f.readers++;
    try {
      const disk = await f.disk.catch((e: unknown) => {
        // A missing or unreadable replica must not stay cached as a failure.
        if (this.files.get(path) === f) this.files.delete(path);
        throw e;
      });
      if (offset + into.length > disk.size) return false;
      await disk.read(offset, into);
      return true;
    } finally {
      f.readers--;
      if (f.evicted && f.readers === 0) await closeReplica(f);
    }
  }

  /**
   * With sibling hosts, received blocks are published promptly (a sibling may be waiting for one
   * this migration claimed): the next batch is written as soon as the one being written is done,
   * so batches grow while a transaction runs instead of waiting for RECORD_BATCH entries.
   */
  private recordSoon(): void {
    if (this.recordQueued) return;
    this.recordQueued = true;
    void this.recording.then(() => {
      this.recordQueued = false;
      this.flushRecords();
    });
  }

  private flushRecords(): void {
    const index = this.o.index;
    if (!index || this.pendingRecords.length === 0) return;
    const batch = this.pendingRecords;
    this.pendingRecords = [];
    this.recordImage ??= index.ensureImage(this.o.imagePath, { size: this.o.image.size, blockSize: this.o.blockSize, kind: 'received', contentIds: this.o.content.format });
    const img = this.recordImage;
    const remote = this.o.remote;
    this.recording = this.recording
      .then(async () => {
        const im = await img;
        await index.addEntries(im, batch);
        // Siblings may fetch these from this host's replica server now (it serves what the index holds).
        remote?.publish(this.o.blockSize, im.no, batch);
      })
      .catch((e) => this.o.log.warn({ err: (e as Error).message }, 'could not record received blocks in the replica index'));
  }

  /** Writes pending index records and closes replica files. */
  async close(): Promise<void> {
    this.flushRecords();
    await this.recording;
    for (const f of this.files.values()) await closeReplica(f);
    this.files.clear();
  }
}

interface ReplicaFile {
  disk: Promise<Disk>;
  readers: number;
  evicted: boolean;
}

/** An indexed image, read-only: a raw file directly, a qcow2 (with its chain) through a qemu-storage-daemon that closing stops. */
async function openReplicaFile(path: string, format: IndexedFormat, log: Logger): Promise<Disk> {
  if (format === 'raw') return FileDisk.open(path, { readOnly: true });
  const opened = await openImage({ spec: { kind: 'file', path, format }, writable: false, log, flag: 'indexed image' });
  return opened.disk;
}

async function closeReplica(f: ReplicaFile): Promise<void> {
  await f.disk.then((d) => d.close()).catch(() => {});
}
