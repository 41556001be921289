/**
 * How several disks of one VM share one WAN link (issue 19, "one disk cannot
 * starve another"): N idle raw disks of random (incompressible) content, one
 * agent pair per disk as `flimcd vm migrate` drives them, every pair's link
 * through one emulated WAN (WanProxy.addRoute). Each source agent's wire
 * bytes are sampled while every disk is still in its first pass; per-disk
 * rates and their ratio (slowest / fastest) are printed.
 *
 *   npm run -s bench:disk-share [-- --disks 2] [--size 64MiB] [--sizes 64MiB,16MiB] [--bandwidth 100Mbit] [--rtt 40ms] [--split] [--json]
 *
 * Without --split every source agent paces at the whole link rate and the
 * link's FIFO with back-pressure shares it; with --split each gets
 * bandwidth / N (`--bandwidth` split, fair by construction but idle capacity
 * once a disk is done).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SourceAgent } from '../src/migrate/source-agent.ts';
import { TargetAgent } from '../src/migrate/target-agent.ts';
import { WanProxy } from '../src/wan-emulator/proxy.ts';
import { generateImage } from '../src/workload/image-gen.ts';
import { resolveFeatures } from '../src/policy/algorithm.ts';
import { ephemeralPsk } from '../src/wire/secure-link.ts';
import { parseBitRate, parseDuration, parseSize } from '../src/util/units.ts';
import { log } from '../src/util/log.ts';
import type { Address } from '../src/util/address.ts';

const BS = 65536;
const { values: a } = parseArgs({
  options: {
    disks: { type: 'string', default: '2' },
    size: { type: 'string', default: '64MiB' },
    sizes: { type: 'string' },
    bandwidth: { type: 'string', default: '100Mbit' },
    rtt: { type: 'string', default: '40ms' },
    split: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const sizes = a.sizes ? a.sizes.split(',').map((s) => parseSize(s, '--sizes')) : Array.from({ length: Number(a.disks) }, () => parseSize(a.size, '--size'));
const n = sizes.length;
const bandwidthBps = parseBitRate(a.bandwidth, '--bandwidth');
const rttMs = parseDuration(a.rtt, '--rtt');
const perSource = a.split ? bandwidthBps / n : bandwidthBps;
const dir = mkdtempSync(join(tmpdir(), 'flimcd-disk-share-'));
const quiet = log.child({ bench: 'disk-share' });
quiet.level = 'warn';
const security = ephemeralPsk();
const closers: Array<() => Promise<unknown>> = [];
try {
  const targets: TargetAgent[] = [];
  const links: Address[] = [];
  for (let i = 0; i < n; i++) {
    await generateImage(join(dir, `vd${i}.img`), sizes[i]!, { seed: 11 + i, mix: { zero: 0, duplicate: 0, text: 0 } });
    const t = new TargetAgent({ image: join(dir, `t${i}.img`), security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, `t${i}.sock`) }, log: quiet });
    closers.push(() => t.close());
    targets.push(t);
    links.push(await t.listen());
  }
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: links[0]!, bandwidthBps, rttMs });
  closers.push(() => wan.close());
  const via = [await wan.listen()];
  for (let i = 1; i < n; i++) via.push(await wan.addRoute({ kind: 'tcp', host: '127.0.0.1', port: 0 }, links[i]!));
  const sources: SourceAgent[] = [];
  for (let i = 0; i < n; i++) {
    const s = await SourceAgent.start({
      image: join(dir, `vd${i}.img`), security, nbd: { kind: 'unix', path: join(dir, `s${i}.sock`) }, to: via[i]!, algorithm: 'flimcd', blockSize: BS,
      bandwidthBps: perSource, features: resolveFeatures('flimcd'), log: quiet,
    });
    closers.unshift(() => s.close());
    sources.push(s);
  }
  const t0 = performance.now();
  const runs = sources.map((s) => s.migrate());
  const wire = () => sources.map((s) => Number(s.status().wireBytes ?? 0));
  // The window: from the first sample where every disk sends until one disk's first pass is done.
  let first: { t: number; w: number[] } | undefined;
  let last: { t: number; w: number[] } | undefined;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const st = sources.map((s) => s.status());
    const busy = st.every((x) => x.phase === 'precopy' && Number(x.round ?? 0) === 0);
    const w = wire();
    if (busy && w.every((b) => b > 0)) {
      first ??= { t: performance.now(), w };
      last = { t: performance.now(), w };
    } else if (first) break;
    if (performance.now() - t0 > 600_000) throw new Error('no disk finished its first pass in 10 minutes');
  }
  const reports = await Promise.all(runs);
  const total_s = (performance.now() - t0) / 1000;
  const span = ((last?.t ?? 0) - (first?.t ?? 0)) / 1000;
  const rates = sources.map((_, i) => (span > 0 ? (((last!.w[i]! - first.w[i]!) * 8) / span) : 0));
  const out = {
    disks: n, sizes, bandwidth_bps: bandwidthBps, rtt_ms: rttMs, per_source_bps: perSource, split: a.split,
    window_s: Math.round(span * 10) / 10,
    rate_mbit: rates.map((r) => Math.round(r / 1e4) / 100),
    fairness_min_over_max: Math.round((Math.min(...rates) / Math.max(...rates)) * 1000) / 1000,
    link_use: Math.round((rates.reduce((x, y) => x + y, 0) / bandwidthBps) * 1000) / 1000,
    time_total_s: Math.round(total_s * 10) / 10,
    per_disk_time_s: reports.map((r) => r.time_total_s),
    verified: reports.map((r) => r.verified),
    loadavg_1m: Math.round(loadavg()[0]! * 100) / 100,
  };
  const headline = { fairness_min_over_max: out.fairness_min_over_max, link_use: out.link_use };
  if (a.json) process.stdout.write(JSON.stringify({ headline, ...out }) + '\n');
  else {
    process.stdout.write(`${n} disks (${sizes.map((s) => `${s >> 20} MiB`).join(', ')}) through one ${bandwidthBps / 1e6} Mbit/s link, RTT ${rttMs} ms, each source at ${perSource / 1e6} Mbit/s${a.split ? ' (split)' : ''}\n`);
    process.stdout.write(`while all were in their first pass (${out.window_s} s): ${out.rate_mbit.map((r, i) => `disk ${i} ${r} Mbit/s`).join(', ')}; slowest/fastest ${out.fairness_min_over_max}, link use ${out.link_use}\n`);
    process.stdout.write(`total ${out.time_total_s} s (per disk ${out.per_disk_time_s.join(', ')} s), verified ${out.verified.join(', ')}; load average ${out.loadavg_1m}\n`);
  }
} finally {
  for (const c of closers) await c().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
