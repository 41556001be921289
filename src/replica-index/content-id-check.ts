import { contentIdFormatName, isContentIdFormat, type ContentIdFormat } from '../content/content-id.ts';
import { imageContentIds, type IndexedImage } from './replica-index.ts';

const formatName = (f: string): string => (isContentIdFormat(f) ? contentIdFormatName(f) : f);

/**
 * Why some of a replica index's images cannot serve an agent naming content
 * in `format`, or undefined if all can (or there are none). Entries are found
 * by id, so an image indexed in another format is never found; the answer
 * names the formats and the command that re-indexes in this one.
 */
export function indexContentIdProblem(images: readonly IndexedImage[], format: ContentIdFormat, dir: string): string | undefined {
  const other = images.filter((im) => imageContentIds(im) !== format);
  if (other.length === 0) return undefined;
  const formats = [...new Set(other.map(imageContentIds))].sort().map(formatName).join(', ');
  const which = other.length === images.length ? 'the index names' : `${other.length} of the index's ${images.length} images name`;
  return `${which} content by ${formats}, this agent by ${formatName(format)}: those entries are never found; re-index them with \`flimcd index add --index ${dir} --reindex --content-hash ${format}\``;
}
