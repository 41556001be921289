/**
 * Command-line options of a benchmark script: strict parsing, `--help`, and
 * value parsers that end the script with exit code 2 and a line naming the
 * option (the flimcd CLI's rules, for `npm run bench:… -- …`).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseBitRate, parseDuration, parseSize } from '../src/util/units.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
type Config<O extends Options> = { args: string[]; options: O & { help: { type: 'boolean'; short: 'h' } }; strict: true; allowPositionals: false };

export interface BenchArgs<O extends Options> {
  values: ReturnType<typeof parseArgs<Config<O>>>['values'];
  /** Prints `bench/NAME: message` and the usage to stderr, exits 2. */
  fail(message: string): never;
  /** An integer >= min (default 1), or `def` when absent. */
  int(v: string | undefined, def: number, what: string, min?: number): number;
  /** A finite number >= min, or `def` when absent. */
  num(v: string | undefined, def: number, what: string, min: number): number;
  /** Bytes (`64MiB`), or `def` when absent. */
  size(v: string | undefined, def: number, what: string): number;
  /** Bits per second (`100Mbit`), or `def` when absent. */
  rate(v: string | undefined, def: number, what: string): number;
  /** Milliseconds (`50ms`, `2s`), or `def` when absent. */
  duration(v: string | undefined, def: number, what: string): number;
  /** A comma-separated subset of `known`, or all of them when absent. */
  list<K extends string>(v: string | undefined, known: readonly K[], what: string): K[];
}

export function benchArgs<O extends Options>(name: string, usage: string, options: O, argv = process.argv.slice(2)): BenchArgs<O> {
  const text = usage.endsWith('\n') ? usage : usage + '\n';
  const fail = (message: string): never => {
    process.stderr.write(`bench/${name}: ${message}\n${text}`);
    process.exit(2);
  };
  let values!: BenchArgs<O>['values'];
  try {
    const config = { args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false } as Config<O>;
    values = parseArgs(config).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(text);
    process.exit(0);
  }
  const parsed = <T>(v: string | undefined, def: T, fn: (s: string) => T): T => {
    if (v === undefined) return def;
    try {
      return fn(v);
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  return {
    values,
    fail,
    int: (v, def, what, min = 1) => parsed(v, def, (s) => {
      const n = Number(s);
      return Number.isInteger(n) && n >= min ? n : fail(`${what} must be an integer >= ${min}, got "${s}"`);
    }),
    num: (v, def, what, min) => parsed(v, def, (s) => {
      const n = Number(s);
      return Number.isFinite(n) && n >= min ? n : fail(`${what} must be a number >= ${min}, got "${s}"`);
    }),
    size: (v, def, what) => parsed(v, def, (s) => parseSize(s, what)),
    rate: (v, def, what) => parsed(v, def, (s) => parseBitRate(s, what)),
    duration: (v, def, what) => parsed(v, def, (s) => parseDuration(s, what)),
    list: (v, known, what) => {
      if (v === undefined) return [...known];
      const items = v.split(',').map((s) => s.trim()).filter(Boolean);
      for (const i of items) if (!(known as readonly string[]).includes(i)) fail(`${what}: unknown "${i}" (known: ${known.join(', ')})`);
      return items as typeof known[number][];
    },
  };
}
