/**
 * The migration planner: predicts time and wire bytes of each algorithm for
 * this image, this workload and this link before a migration starts, by
 * simulating them (simulate.ts), and recommends the fastest.
 *
 * Observing the live source: the VM writes through the source agent into the
 * raw image file, so two scans of the file `watchMs` apart show exactly which
 * blocks it changed — the distinct dirty rate docs/design.md pins workloads to, and
 * where the writes go (write-hot areas). Reads are not visible in the file;
 * the workload keeps the profile shape's read share (70 %).
 *
 * Large images are planned on a scale model: every k-th block of the image
 * (k = ceil(size / planBytes)) over a link k times slower, with the workload
 * resolved against that link so it dirties the same share of it. Time is the
 * same in the model as at full size (bytes / rate both divided by k; RTT is
 * not scaled, a second-order term at these sizes); wire bytes are multiplied
 * back by k.
 */
import { open } from 'node:fs/promises';
import { contentId, isZero } from '../content/content-id.ts';
import { ALGORITHMS, resolveFeatures, type Algorithm } from '../policy/algorithm.ts';
import { AREA_SIZE, RequestGenerator } from '../workload/generator.ts';
import { PROFILES, resolveProfile, type ProfileSpec } from '../workload/profiles.ts';
import { SimDisk } from './sim-disk.ts';
import { simulate } from './simulate.ts';
import type { Workload } from './scenario.ts';

export interface Observation {
  watchMs: number;
  /** Distinct bytes the VM changed per second during the watch. */
  dirtyBytesPerSec: number;
  /** Blocks changed. */
  changedBlocks: number;
  /** Share of 1 MiB areas holding 80 % of the changed blocks (write hot set); null without changes. */
  hotAreaShare: number | null;
}

/** Content ids only (cheap re-scan for the diff). */
async function blockIds(path: string, blockSize: number): Promise<Float64Array> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const ids = new Float64Array(Math.ceil(size / blockSize));
    const chunk = Buffer.allocUnsafe(Math.max(blockSize, 4 << 20) - (Math.max(blockSize, 4 << 20) % blockSize));
    for (let off = 0; off < size; off += chunk.length) {
      const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - off), off);
      for (let p = 0; p < bytesRead; p += blockSize) {
        const block = chunk.subarray(p, Math.min(bytesRead, p + blockSize));
        if (isZero(block)) continue;
        const h = contentId(block);
        ids[(off + p) / blockSize] = (h.readUInt32LE(0) & 0xfffff) * 2 ** 32 + h.readUInt32LE(4) || 1;
      }
    }
    return ids;
  } finally {
    await fh.close();
  }
}

/**
 * Watches the image file: ids now, wait, ids again; the difference is what the
 * VM dirtied. Each block is sampled at the same offset into both scans, so the
 * window is the time between the scans' starts.
 */
export async function observeImage(path: string, blockSize: number, watchMs: number): Promise<Observation> {
  const t0 = performance.now();
  const a = await blockIds(path, blockSize);
  const left = watchMs - (performance.now() - t0);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  const t1 = performance.now();
  const b = await blockIds(path, blockSize);
  const secs = Math.max(0.001, (t1 - t0) / 1000);
  const perArea = new Map<number, number>();
  let changed = 0;
  const blocksPerArea = Math.max(1, AREA_SIZE / blockSize);
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      changed++;
      const area = Math.floor(i / blocksPerArea);
      perArea.set(area, (perArea.get(area) ?? 0) + 1);
    }
  }
  let hotAreaShare: number | null = null;
  if (changed) {
    const counts = [...perArea.values()].sort((x, y) => y - x);
    let sum = 0;
    let k = 0;
    while (sum < 0.8 * changed) sum += counts[k++]!;
    hotAreaShare = Math.min(1, Math.max(1e-4, k / Math.ceil(a.length / blocksPerArea)));
  }
  return { watchMs: secs * 1000, dirtyBytesPerSec: (changed * blockSize) / secs, changedBlocks: changed, hotAreaShare };
}

/** A workload of the `moderate` shape dirtying what was observed. */
export function observedProfile(o: Observation, bandwidthBps: number): ProfileSpec {
  const base = PROFILES.moderate;
  if (o.dirtyBytesPerSec <= 0) return { ...PROFILES.idle, name: 'observed (no writes)' };
  return {
    ...base,
    name: 'observed',
    description: `moderate's shape, dirtying ${(o.dirtyBytesPerSec / 1e6).toFixed(2)} MB/s as observed`,
    dirtyShareOfLink: o.dirtyBytesPerSec / (bandwidthBps / 8),
    hotAreaShare: o.hotAreaShare && o.hotAreaShare < 1 ? Math.max(0.01, o.hotAreaShare) : base.hotAreaShare,
  };
}

/** Every k-th block: a scale model of the image. */
export function scaleImage(image: SimDisk, k: number): SimDisk {
  if (k <= 1) return image;
  const n = Math.ceil(image.blocks / k);
  const out = new SimDisk(n * image.unit, image.unit);
  for (let i = 0; i < n; i++) {
    out.ids[i] = image.ids[i * k]!;
    out.zsizes[i] = image.zsizes[i * k]!;
  }
  return out;
}

export interface PlanOptions {
  image: SimDisk;
  targetImage?: SimDisk;
  bandwidthBps: number;
  rttMs: number;
  /** The workload to plan for: observed (a profile spec) or given (a request source factory). */
  profile?: ProfileSpec;
  workload?: Workload;
  algorithms?: readonly Algorithm[];
  /** Largest image simulated at full scale (default 1 GiB). */
  planBytes?: number;
  seed?: number;
}

export interface PlanRow {
  algorithm: Algorithm;
  time_total_s: number;
  wire_bytes: number;
  downtime_ms: number;
  block_miss_rate: number;
  guest_slowdown: number | null;
  verified: boolean;
}

export interface Plan {
  recommended: Algorithm;
  reason: string;
  scale: number;
  rows: PlanRow[];
  workload: string;
  image_bytes: number;
  bandwidth_bps: number;
  rtt_ms: number;
  plan_wall_s: number;
}

export async function plan(o: PlanOptions): Promise<Plan> {
  const wall0 = performance.now();
  const k = Math.max(1, Math.ceil(o.image.size / (o.planBytes ?? 2 ** 30)));
  const image = scaleImage(o.image, k);
  const target = o.targetImage ? scaleImage(o.targetImage, k) : undefined;
  const bw = o.bandwidthBps / k;
  const seed = o.seed ?? 1;
  let requests: () => import('../workload/executor.ts').RequestSource | undefined;
  let name: string;
  if (o.workload) {
    requests = o.workload.requests;
    name = o.workload.name;
  } else {
    const spec = o.profile ?? PROFILES.idle;
    const params = resolveProfile(spec, { linkBitsPerSecond: bw, imageBytes: image.size, blockSize: image.unit }).params;
    requests = () => new RequestGenerator(params, seed);
    name = spec.name;
  }
  const rows: PlanRow[] = [];
  for (const algorithm of o.algorithms ?? ALGORITHMS) {
    const r = await simulate({ image, targetImage: target, algorithm, features: resolveFeatures(algorithm), bandwidthBps: bw, rttMs: o.rttMs, requests: requests(), controlRequests: requests(), warmupMs: 10_000 });
    rows.push({
      algorithm, time_total_s: r.report.time_total_s, wire_bytes: r.report.wire_bytes * k, downtime_ms: r.report.downtime_ms,
      block_miss_rate: r.report.block_miss_rate, guest_slowdown: r.guest.guest_slowdown, verified: r.report.verified,
    });
  }
  const ok = rows.filter((r) => r.verified);
  const best = [...ok].sort((a, b) => a.time_total_s - b.time_total_s || a.wire_bytes - b.wire_bytes)[0];
  if (!best) throw new Error('no simulated algorithm verified: cannot recommend one');
  const next = [...ok].filter((r) => r !== best).sort((a, b) => a.time_total_s - b.time_total_s)[0];
  const reason = next
    ? `fastest: ${best.time_total_s.toFixed(1)} s vs ${next.algorithm} ${next.time_total_s.toFixed(1)} s, ${((best.wire_bytes / Math.max(1, next.wire_bytes)) * 100).toFixed(0)} % of its wire bytes`
    : 'the only algorithm simulated';
  return { recommended: best.algorithm, reason, scale: k, rows, workload: name, image_bytes: o.image.size, bandwidth_bps: o.bandwidthBps, rtt_ms: o.rttMs, plan_wall_s: (performance.now() - wall0) / 1000 };
}
