/**
 * Base images' Merkle roots (src/image/from-backing.ts), computed once per
 * base: keyed by the file's identity (device, inode, size, modification
 * time), the block size and the content-id format, so the agents of one
 * process with overlays on one base hash it once, whatever path names it.
 * A computation under way is shared; at most `max` roots are kept (the least
 * recently used goes first).
 */
import type { Stats } from 'node:fs';

/** What names a base's root: the file as it is now, cut into blocks and hashed one way. */
export function baseRootKey(st: Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs'>, blockSize: number, format: string): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${blockSize}:${format}`;
}

export class BaseRoots {
  private readonly roots = new Map<string, Promise<string>>();
  /** How many roots were computed (not found here). */
  readonly stats = { computed: 0 };

  constructor(private readonly max = 64) {}

  /** The root under `key`, from `compute` unless it is known or under way. A failed computation is not kept. */
  get(key: string, compute: () => Promise<string>): Promise<string> {
    let root = this.roots.get(key);
    if (root) {
      // Most recently used last: Map keeps insertion order.
      this.roots.delete(key);
    } else {
      this.stats.computed++;
      root = compute();
      root.catch(() => {
        if (this.roots.get(key) === root) this.roots.delete(key);
      });
    }
    this.roots.set(key, root);
    while (this.roots.size > this.max) this.roots.delete(this.roots.keys().next().value!);
    return root;
  }
}
