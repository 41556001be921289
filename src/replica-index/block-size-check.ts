import type { IndexedImage } from './replica-index.ts';

/** A block size as operators write it: 4 KiB, 64 KiB, 1 MiB. */
function blockSizeText(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

/**
 * Why a replica index cannot serve a migration with `blockSize`, or undefined
 * if it can (or holds nothing yet). Entries are keyed by block size, so an
 * index built only at other sizes finds nothing; the answer names the sizes it
 * has and the command that re-indexes at this one.
 */
export function indexBlockSizeProblem(images: readonly IndexedImage[], blockSize: number, dir: string): string | undefined {
  if (images.length === 0 || images.some((im) => im.blockSize === blockSize)) return undefined;
  const sizes = [...new Set(images.map((im) => im.blockSize))].sort((a, b) => a - b).map(blockSizeText).join(', ');
  const flag = blockSize % (1 << 20) === 0 ? `${blockSize / (1 << 20)}MiB` : `${blockSize / 1024}KiB`;
  return `index uses ${sizes} blocks, this migration ${blockSizeText(blockSize)}: it cannot be used; re-index it at this size with \`flimcd index add --index ${dir} --reindex --block-size ${flag}\``;
}
