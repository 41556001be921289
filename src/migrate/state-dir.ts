import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Bitmap } from '../util/bitmap.ts';
import { UsageError } from '../errors.ts';

/**
 * A migration's durable state, in a directory next to the image
 * (`IMAGE.flimcd/` unless `--state-dir` says otherwise). Small JSON records
 * are replaced atomically (write, fsync, rename, fsync the directory), so a
 * kill -9 or power loss leaves either the old or the new record, never a torn one.
 */
export class StateDir {
  constructor(readonly path: string) {}

  static forImage(image: string, stateDir?: string): StateDir {
    return new StateDir(stateDir ?? `${image}.flimcd`);
  }

  file(name: string): string {
    return join(this.path, name);
  }

  exists(name: string): boolean {
    return existsSync(this.file(name));
  }

  readJson<T>(name: string): T | undefined {
    const f = this.file(name);
    if (!existsSync(f)) return undefined;
    try {
      return JSON.parse(readFileSync(f, 'utf8')) as T;
    } catch (e) {
      throw new UsageError(`migration state ${f} is unreadable (${(e as Error).message}); remove ${this.path} to start over`);
    }
  }

  writeJson(name: string, value: unknown): void {
    this.writeAtomic(name, Buffer.from(JSON.stringify(value) + '\n'));
  }

  /** writeAtomic off the event loop: for records written while the VM waits (cut-over). */
  async writeAtomicAsync(name: string, data: Uint8Array): Promise<void> {
    await mkdir(this.path, { recursive: true });
    const f = this.file(name);
    const tmp = `${f}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, f);
    const dir = await open(this.path, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  writeJsonAsync(name: string, value: unknown): Promise<void> {
    return this.writeAtomicAsync(name, Buffer.from(JSON.stringify(value) + '\n'));
  }

  writeAtomic(name: string, data: Uint8Array): void {
    mkdirSync(this.path, { recursive: true });
    const f = this.file(name);
    const tmp = `${f}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, f);
    syncDir(this.path);
  }

  readBytes(name: string): Buffer | undefined {
    const f = this.file(name);
    return existsSync(f) ? readFileSync(f) : undefined;
  }

  /** Removes one record (atomically: it is there or it is not); the rest of the directory stays. */
  removeFile(name: string): void {
    rmSync(this.file(name), { force: true });
    if (existsSync(this.path)) syncDir(this.path);
  }

  /** The migration completed: nothing left to resume. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
    if (existsSync(dirname(this.path))) syncDir(dirname(this.path));
  }
}

function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Record kinds of the presence log. */
export const PresenceKind = { PRESENT: 0, WRITTEN: 1 } as const;

/**
 * The target's post-copy presence log: which blocks became present (data from
 * the source, or a whole-block VM write) and which the VM wrote here, on top
 * of the missing-block snapshot taken at cut-over. Appends are group-committed:
 * callers wait for one fsync of the image and one of the log that covers
 * everything queued meanwhile, so the cost is per batch, not per block. Each
 * record is 4 bytes (kind in the top bit); a torn last record is ignored on load.
 */
export class PresenceLog {
  private queued: number[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private running: Promise<void> | undefined;
  private closed = false;
  /** fsync batches done (for measurement). */
  commits = 0;
  records = 0;

  private constructor(private readonly fh: FileHandle, private readonly syncData: () => Promise<void>) {}

  /** `syncData` makes the image's data durable (it runs before the log's own fsync). */
  static async open(path: string, syncData: () => Promise<void>): Promise<PresenceLog> {
    return new PresenceLog(await open(path, 'a'), syncData);
  }

  /** Resolves once these records (and the image data written before the call) are durable. */
  append(kind: number, blocks: Iterable<number>): Promise<void> {
    for (const b of blocks) this.queued.push(((kind & 1) << 31 | b) >>> 0);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.running) this.running = this.commitLoop();
    });
  }

  private async commitLoop(): Promise<void> {
    // Let the current burst of callers queue first: one fsync covers them all.
    await new Promise((r) => setImmediate(r));
    while (this.waiters.length) {
      const records = this.queued.splice(0);
      const waiters = this.waiters.splice(0);
      try {
        if (this.closed) throw new Error('presence log closed');
        await this.syncData();
        if (records.length) {
          const buf = Buffer.allocUnsafe(records.length * 4);
          records.forEach((r, i) => buf.writeUInt32BE(r, i * 4));
          await this.fh.write(buf);
          await this.fh.datasync();
        }
        this.commits++;
        this.records += records.length;
        for (const w of waiters) w.resolve();
      } catch (e) {
        for (const w of waiters) w.reject(e as Error);
      }
    }
    this.running = undefined;
  }

  async close(): Promise<void> {
    await this.running;
    this.closed = true;
    await this.fh.close();
  }

  /** Applies a log to the cut-over snapshot: present blocks leave `missing`, written ones join `written`. */
  static replay(data: Buffer | undefined, missing: Bitmap, written: Bitmap): void {
    if (!data) return;
    for (let i = 0; i + 4 <= data.length; i += 4) {
      const r = data.readUInt32BE(i);
      const b = r & 0x7fffffff;
      if (b >= missing.size) continue;
      if (r >>> 31) written.set(b);
      else missing.clear(b);
    }
  }
}
