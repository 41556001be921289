/**
 * The trace recorder's page digest, native: XXH3-128 of each 4 KiB through
 * the optional addon native/sparse/pagedigest.c, which opens the system's
 * libxxhash (Debian's libxxhash0) at run time. On data in cache it takes
 * 27 µs per MiB where hash-wasm's XXH3-128 takes 256, cheap enough to run on
 * the thread serving the VM, on the request's own bytes, with no copy. (A
 * read's bytes, just written by the kernel into a fresh reply buffer, are
 * mostly not in cache: there the first pass over them, hash or copy alike,
 * costs 120-480 µs per MiB, bound by memory.) Without the addon or the
 * library, `nativePageDigests` is undefined and the recorder's worker
 * digests with hash-wasm: the same digests, byte for byte
 * (test/workload/page-digest.test.ts). FLIMCD_NO_NATIVE=1 forces that
 * fallback, as for the sparse helper.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Bytes of one digest (XXH3-128, canonical: high half first, big-endian). */
export const DIGEST_BYTES = 16;
/** What one digest covers. */
export const DIGEST_PAGE = 4096;

export interface PageDigester {
  /**
   * The digest of each 4 KiB of `data` (the last piece may be shorter), 16
   * bytes each, into `out` from byte `at`; returns how many. Throws a
   * RangeError when `out` has no room for them.
   */
  digestPages(data: Uint8Array, out: Uint8Array, at: number): number;
}

function load(): { digester?: PageDigester; reason?: string } {
  if (process.env.FLIMCD_NO_NATIVE) return { reason: 'disabled by FLIMCD_NO_NATIVE' };
  if (process.platform !== 'linux') return { reason: `not supported on ${process.platform}` };
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const build of ['Release', 'Debug']) {
    const path = fileURLToPath(new URL(`../../native/sparse/build/${build}/pagedigest.node`, import.meta.url));
    try {
      const mod = require(path) as { digestPages?: PageDigester['digestPages']; loadError?: string };
      if (typeof mod.digestPages === 'function') return { digester: { digestPages: mod.digestPages } };
      failures.push(`${path}: ${mod.loadError ?? 'no digestPages'}`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failures.push(e.code === 'MODULE_NOT_FOUND' ? `${path} not built` : `${path}: ${e.message}`);
    }
  }
  return { reason: `native page digest not loaded (${failures.join('; ')}); the trace recorder digests with hash-wasm on its worker` };
}

const loaded = load();

/** The native digest, or undefined when unavailable (see nativePageDigestsError). */
export const nativePageDigests: PageDigester | undefined = loaded.digester;

/** Why `nativePageDigests` is undefined; undefined when it loaded. */
export const nativePageDigestsError: string | undefined = loaded.reason;

/**
 * Digests an FIU line carries for `length` bytes at `offset`: one per 4 KiB
 * of the range widened to 512-byte sectors (fiu-trace.ts checks the count).
 * That can be one more than the data has pages; the writer digests the last
 * byte for it (trace-writer-worker.mjs, TraceRecorder).
 */
export function fiuPages(offset: number, length: number): number {
  const lba = Math.floor(offset / 512);
  const sectors = Math.ceil((offset + length) / 512) - lba;
  return Math.ceil(sectors / 8);
}
