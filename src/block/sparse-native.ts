/**
 * Loader for the optional native sparse helper (native/sparse, built by
 * `npm install` through scripts/build-native.mjs). Node has no fallocate or
 * SEEK_DATA/SEEK_HOLE; without them FileDisk still works, only slower at
 * zeroing and blind to holes. Set FLIMCD_NO_NATIVE=1 to force the fallback.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The addon's calls. Each runs on the libuv pool; failures carry `code`/`errno` like Node's system errors. */
export interface SparseOps {
  /** fallocate(PUNCH_HOLE | KEEP_SIZE). */
  punchHole(fd: number, offset: number, length: number): Promise<void>;
  /** fallocate(ZERO_RANGE | KEEP_SIZE): zeroes and keeps the range allocated. */
  zeroRange(fd: number, offset: number, length: number): Promise<void>;
  /** lseek(SEEK_DATA); -1 when there is no data at or after offset (ENXIO). */
  seekData(fd: number, offset: number): Promise<number>;
  /** lseek(SEEK_HOLE); -1 when offset is at or past EOF (ENXIO). */
  seekHole(fd: number, offset: number): Promise<number>;
  /**
   * Data/hole map of [offset, offset+length) in one trip to the thread pool:
   * flat triples (offset, length, flags) with flags 0 (data) or HOLE|ZERO,
   * merged, contiguous from offset; stops early after maxExtents entries.
   */
  mapExtents(fd: number, offset: number, length: number, maxExtents: number): Promise<Float64Array>;
  /** posix_fadvise(WILLNEED): start readahead of the range. */
  willNeed(fd: number, offset: number, length: number): Promise<void>;
  /**
   * preadv2(RWF_NOWAIT) on the calling thread: copies only what the page
   * cache holds, never waits for the disk. Bytes read (0 at EOF, short when
   * part is cached) or -errno (-EAGAIN when not cached). Optional: a build
   * from before it still loads.
   */
  readCached?(fd: number, into: Uint8Array, offset: number): number;
}

const NAMES = ['punchHole', 'zeroRange', 'seekData', 'seekHole', 'mapExtents', 'willNeed'] as const;

function load(): { ops?: SparseOps; reason?: string } {
  if (process.env.FLIMCD_NO_NATIVE) return { reason: 'disabled by FLIMCD_NO_NATIVE' };
  if (process.platform !== 'linux') return { reason: `not supported on ${process.platform}` };
  const require = createRequire(import.meta.url);
  const candidates = ['Release', 'Debug'].map((b) => fileURLToPath(new URL(`../../native/sparse/build/${b}/sparse.node`, import.meta.url)));
  const failures: string[] = [];
  for (const path of candidates) {
    try {
      const mod = require(path) as Record<string, unknown>;
      const missing = NAMES.filter((n) => typeof mod[n] !== 'function');
      if (missing.length) {
        failures.push(`${path}: stale build, missing ${missing.join(', ')} (run npm install)`);
        continue;
      }
      return { ops: mod as unknown as SparseOps };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failures.push(e.code === 'MODULE_NOT_FOUND' ? `${path} not built` : `${path}: ${e.message}`);
    }
  }
  return { reason: `native sparse helper not loaded (${failures.join('; ')}); run \`npm install\` or \`node scripts/build-native.mjs\`` };
}

const loaded = load();

/** The native calls, or undefined when the addon is unavailable (see sparseLoadError). */
export const sparse: SparseOps | undefined = loaded.ops;

/** Why `sparse` is undefined; undefined when it loaded. */
export const sparseLoadError: string | undefined = loaded.reason;
