import { UsageError } from '../errors.ts';

/**
 * Human units for the CLI: sizes (64KiB, 1GiB, 1G, 512), bit rates (100Mbit,
 * 1Gbit, 12.5MB/s) and durations (50ms, 2s, 1m). Decimal prefixes are powers
 * of 1000, binary prefixes (Ki, Mi, Gi, Ti) powers of 1024. A bare size number
 * is bytes; bare "K/M/G/T" on a size are binary, as qemu-img and dd read them.
 * Rates and durations always need their unit.
 */

const BIN: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
const DEC: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(text);
  if (!m) throw new UsageError(`${what}: cannot read "${text}" as a size (examples: 4096, 64KiB, 1GiB, 20G)`);
  const [, num, prefix, i, b] = m;
  const p = prefix!.toLowerCase();
  // "64KB" is decimal only when written with an explicit B and no i; plain "64K" is binary.
  const scale = i || !b || !p ? BIN[p]! : DEC[p]!;
  const v = Number(num) * scale;
  if (!Number.isSafeInteger(Math.round(v)) || Math.round(v) !== v) {
    throw new UsageError(`${what}: "${text}" is not a whole number of bytes`);
  }
  return v;
}

/** A migration block size: a power of two from 4 KiB to 1 MiB. */
export function parseBlockSize(text: string, what = '--block-size'): number {
  const v = parseSize(text, what);
  if (v < 4096 || v > 1 << 20 || (v & (v - 1)) !== 0) throw new UsageError(`${what}: ${text} must be a power of two from 4KiB to 1MiB`);
  return v;
}

/**
 * Returns bits per second. The unit must be explicit: bits (`100Mbit`, `1Gbit`,
 * `100Mbit/s`, `100Mbps`) or bytes per second (`12.5MB/s`, `12.5MBps`). A bare
 * `100M` or `100` is refused: link speeds are quoted in bits, sizes in bytes,
 * and guessing wrong is a factor of 8.
 */
export function parseBitRate(text: string, what = 'bandwidth'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)(bit\/s|bit|bps|b\/s|B\/s|Bps)?\s*$/.exec(text);
  const bare = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)B?\s*$/.exec(text);
  if (bare) {
    // No unit, or a size unit: name both readings rather than guess one.
    const [, num, prefix, i] = bare;
    const bits = Number(num) * (i ? BIN[prefix!.toLowerCase()]! : DEC[prefix!.toLowerCase()]!);
    const n = `${num}${prefix}${i}`;
    throw new UsageError(`${what}: "${text.trim()}" is ambiguous: write ${n}bit for ${formatBitRate(bits)}, or ${n}B/s for ${n} bytes a second (${formatBitRate(bits * 8)})`);
  }
  if (!m) {
    throw new UsageError(`${what}: cannot read "${text}" as a rate (examples: 100Mbit, 1Gbit, 12.5MB/s)`);
  }
  const [, num, prefix, i, unit] = m;
  const p = prefix!.toLowerCase();
  const scale = i ? BIN[p]! : DEC[p]!;
  const bytes = unit === 'B/s' || unit === 'Bps';
  const v = Number(num) * scale * (bytes ? 8 : 1);
  if (!(v > 0) || !Number.isFinite(v)) throw new UsageError(`${what}: "${text}" must be a positive rate`);
  return v;
}

/** Returns milliseconds. The unit is required (`50ms`, `2s`, `1m`): a bare `50` could be either. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|min|h)?\s*$/.exec(text);
  if (!m) throw new UsageError(`${what}: cannot read "${text}" as a duration (examples: 50ms, 2s, 1m)`);
  const n = Number(m[1]);
  const unit = m[2];
  if (unit === undefined) {
    // Zero is zero in any unit.
    if (n === 0) return 0;
    throw new UsageError(`${what}: "${text}" has no unit: write ${m[1]}ms or ${m[1]}s (units: us, ms, s, m, h)`);
  }
  const ms = { us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[unit]!;
  return n * ms;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatBitRate(bitsPerSecond: number): string {
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  let v = bitsPerSecond;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m${Math.round(s - m * 60).toString().padStart(2, '0')}s`;
}
