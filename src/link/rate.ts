import { parseBitRate } from '../util/units.ts';

/**
 * parseBitRate as operators write rates: "100Mbit", "1Gbit", "12.5MB/s".
 * util/units.ts's parseBitRate only matches lower-case SI prefixes
 * ("100mbit"), so the prefix is lower-cased first; the unit keeps its case,
 * since "B" (bytes) and "b"/"bit" (bits) differ. Returns bits per second.
 */
export function parseLinkRate(text: string, what = 'bandwidth'): number {
  const normalised = text.replace(/^(\s*\d+(?:\.\d+)?\s*)([KMGT])/, (_, n: string, p: string) => n + p.toLowerCase());
  try {
    return parseBitRate(normalised, what);
  } catch (e) {
    // Quote what the operator wrote, not the normalised form.
    if (e instanceof Error && normalised !== text) e.message = e.message.replace(`"${normalised}"`, `"${text}"`);
    throw e;
  }
}
