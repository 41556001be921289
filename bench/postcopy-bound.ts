/**
 * How low can push ordering take the post-copy miss rate on bench:postcopy's
 * workloads? Prints the model's miss rate for each push order over plain block
 * order (bench/postcopy-model.ts has the model, its orders and its check
 * against measured counts). A model, not a measurement.
 *
 *   npm run -s bench:postcopy-bound [-- --json] [--runs N] [--size 128MiB] [--only moderate,mail,fiu]
 */
import { benchArgs } from './bench-args.ts';
import { modelPushOrders, MODEL_WORKLOADS, ORDERS } from './postcopy-model.ts';

const args = benchArgs('postcopy-bound', `usage: tsx bench/postcopy-bound.ts [--json] [--runs N] [--size SIZE] [--bandwidth RATE] [--rtt MS] [--queue MS] [--warmup S] [--only moderate,mail,fiu]
  --runs N       runs (seeds 1..N, as bench:postcopy); medians are reported (default 3)
  --size SIZE    image size (default 128MiB)
  --bandwidth    link rate (default 100Mbit)
  --rtt MS       round-trip time in ms (default 30)
  --queue MS     queueing a demand fetch meets behind the push, ms (default 40)
  --warmup S     seconds of workload before the cut-over (default 10)`, {
  json: { type: 'boolean' },
  runs: { type: 'string' },
  size: { type: 'string' },
  bandwidth: { type: 'string' },
  rtt: { type: 'string' },
  queue: { type: 'string' },
  warmup: { type: 'string' },
  only: { type: 'string' },
});
const v = args.values;
const o = {
  runs: args.int(v.runs, 3, '--runs'),
  size: args.size(v.size, 128 * 2 ** 20, '--size'),
  bandwidthBps: args.rate(v.bandwidth, 100e6, '--bandwidth'),
  rttMs: args.num(v.rtt, 30, '--rtt', 0),
  queueMs: args.num(v.queue, 40, '--queue', 0),
  warmupMs: args.num(v.warmup, 10, '--warmup', 0) * 1000,
  only: args.list(v.only, MODEL_WORKLOADS, '--only'),
};
if (o.size < 2 ** 20 || o.size % 2 ** 20 !== 0) args.fail('--size must be a multiple of 1 MiB');
const m = await modelPushOrders(o);
if (v.json) {
  process.stdout.write(JSON.stringify({ benchmark: 'postcopy-bound', model: true, headline: m.headline, medians: m.medians, ratios: m.ratios, counts: m.counts, plain_postcopy_s: m.plainPostcopyS, miss_kinds: m.missKinds, config: o }) + '\n');
} else {
  const { medians: med, ratios: ratio, counts, plainPostcopyS: plainTime, missKinds } = m;
  process.stdout.write(`\nMODEL (not a measurement): post-copy miss rate by push order, median of ${o.runs}; ${o.size / 2 ** 20} MiB, ${o.bandwidthBps / 1e6} Mbit/s, ${o.rttMs} ms RTT + ${o.queueMs} ms queue, ${o.warmupMs / 1000} s warm-up\n\n`);
  const rows = [['workload', ...ORDERS, ...ORDERS.slice(1).map((x) => `${x}/plain`)]];
  for (const w of o.only) rows.push([w, ...ORDERS.map((x) => `${(med[w]![x] * 100).toFixed(2)} %`), ...ORDERS.slice(1).map((x) => ratio[w]![x].toFixed(2))]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ') + '\n');
  process.stdout.write('\nplain (block order) misses / blocks read per run, to hold against bench:postcopy\'s measured plain counts:\n');
  for (const w of o.only) process.stdout.write(`  ${w.padEnd(8)} ${counts[w]!.plain.map(([mi, r], k) => `${mi}/${r} (${plainTime[w]![k]!.toFixed(1)} s)`).join('  ')}\n`);
  process.stdout.write('\nmisses by kind, sum over runs (sequential / random reads; of all, block already on its way):\n');
  for (const w of o.only) {
    for (const ord of ['plain', 'oracle probability'] as const) {
      const k = missKinds[w]![ord].reduce((a, x) => ({ sequential: a.sequential + x.sequential, random: a.random + x.random, onTheWay: a.onTheWay + x.onTheWay }));
      process.stdout.write(`  ${w.padEnd(8)} ${ord.padEnd(18)} sequential ${k.sequential}  random ${k.random}  on its way ${k.onTheWay}\n`);
    }
  }
  process.stdout.write(`\nworst ratio over workloads: ${Object.entries(m.headline).map(([k, x]) => `${k} ${x}`).join(', ')}\n`);
}
