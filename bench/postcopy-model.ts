/**
 * The post-copy push-order model behind bench:postcopy-bound (and the bound
 * bench:postcopy prints beside its measurements): how low can push ordering
 * take the post-copy miss rate on bench:postcopy's workloads? A model, not a
 * measurement: it replays the very requests bench:postcopy runs (same
 * generators, seeds, warm-up, image, link rate) on a modelled link, for push
 * orders from what the source can know to what only a clairvoyant could.
 *
 * Orders (all pushed by the real policy code: HeatMap, pushOrder, walkAreas):
 * - plain: block order (plain post-copy).
 * - source heat: read-hot areas first by the source's heat map at cut-over
 *   (hot order before block heat).
 * - source block heat: the push plan hot order uses now (transfer-order.ts
 *   pushPlan): blocks and areas by the source's block and area read heat.
 * - perfect area heat: areas by how often the workload actually reads them
 *   after cut-over, counted exactly (no ordering by area heat can beat the
 *   true area popularity on a workload whose reads are uniform inside areas).
 * - perfect block heat: pushPlan on the exact read counts after cut-over.
 * - oracle probability: every block by its true read probability, computed
 *   from the generator's own parameters (src/workload/read-probability.ts:
 *   Zipf area weights of both popularities, uniform slots within an area, the
 *   sequential share's position profile; for fiu the synthesis' file and
 *   database popularity). For i.i.d. reads no policy that knows only the past
 *   can order better: this is the bound on push ordering (the sequential
 *   share is not i.i.d.; following live streams is prefetch's job). It
 *   bounds prefetch too: a prefetched block takes the link as a pushed one
 *   does, and on i.i.d. reads a miss says nothing about the next read that
 *   the probabilities did not already say, so no reaction to misses can beat
 *   the best fixed order (the model's misses of the sequential kind, the only
 *   ones a stream prefetch can save, are 1-3 a run).
 * - clairvoyant: every block in the order of its first read after cut-over
 *   (needs the future; a floor no real system reaches).
 *
 * Model: blocks holding only zeros at cut-over (and not written in warm-up)
 * are present at the target (they travel as holes before cut-over); the push
 * sends one block per block-time at the link rate; a read or partial write of
 * a missing block sends a demand fetch, which takes one block-time of the
 * link and lands `rtt + queue` ms later; reads of a block before it lands are
 * misses (docs/design.md block_miss_rate: every block a read touches counts); a
 * whole-block write makes a block present. Post-copy ends when all is present.
 *
 * Checked against the real bench (bench:postcopy, plain variant, same seeds):
 * when every real post-copy runs near line rate, the model's miss count per
 * run is within about 8 % of the measured one on each workload. A run slowed
 * by machine load lasts longer, reads more during post-copy and misses more
 * than the model says: the model assumes the push runs at the link rate.
 * bench:postcopy-bound prints plain's counts and post-copy time per run so
 * the two can be held against each other again.
 */
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateImage } from '../src/workload/image-gen.ts';
import { resolveProfile } from '../src/workload/profiles.ts';
import { RequestGenerator, type WorkloadRequest } from '../src/workload/generator.ts';
import { synthesizeFiuTrace } from '../src/workload/fiu-synth.ts';
import { fiuBlockReadRates, generatorBlockReadRates } from '../src/workload/read-probability.ts';
import { FiuReplay, parseFiuTrace } from '../src/workload/fiu-trace.ts';
import { HeatMap } from '../src/policy/heat-map.ts';
import { BLOCK_ORDER, pushOrder, pushPlan, type AreaOrder, type BlockHeat } from '../src/policy/transfer-order.ts';
import { walkAreas, walkPlan } from '../src/migrate/area-walk.ts';
import { Bitmap } from '../src/util/bitmap.ts';
import { median } from './stats.ts';

export const ORDERS = ['plain', 'source heat', 'source block heat', 'perfect area heat', 'perfect block heat', 'oracle probability', 'clairvoyant'] as const;
export type Order = (typeof ORDERS)[number];
export const MODEL_WORKLOADS = ['moderate', 'mail', 'fiu'] as const;
export type ModelWorkload = (typeof MODEL_WORKLOADS)[number];
const BS = 65536;
const AREA = 1 << 20;

interface Source {
  next(): WorkloadRequest | undefined;
}

export interface ModelConfig {
  runs: number;
  size: number;
  bandwidthBps: number;
  rttMs: number;
  /** Queueing a demand fetch meets behind the push in the link (ms). */
  queueMs: number;
  warmupMs: number;
  only: readonly ModelWorkload[];
}

export interface ModelResult {
  /** Median miss rate per workload and order. */
  medians: Record<string, Record<Order, number>>;
  /** Median miss rate over that of plain block order, per workload and order. */
  ratios: Record<string, Record<Order, number>>;
  /** Worst (largest) ratio over the workloads, per order (snake-case keys). */
  headline: Record<string, number>;
  /** Misses and blocks read per run (to hold the model against bench:postcopy's measured counts). */
  counts: Record<string, Record<Order, Array<[number, number]>>>;
  /** Modelled plain post-copy duration per run, seconds. */
  plainPostcopyS: Record<string, number[]>;
  missKinds: Record<string, Record<Order, Array<Outcome['kinds']>>>;
}

/** Block indices of all-zero blocks in the generated image (holes or zero data). */
function zeroBlocks(path: string, size: number): Bitmap {
  const data = readFileSync(path);
  const z = new Bitmap(Math.ceil(size / BS));
  for (let b = 0; b < z.size; b++) {
    const s = data.subarray(b * BS, Math.min(size, (b + 1) * BS));
    let zero = true;
    for (let i = 0; i < s.length; i += 8) if (s.readBigUInt64LE(i) !== 0n) { zero = false; break; }
    if (zero) z.set(b);
  }
  return z;
}

export interface Outcome {
  misses: number;
  reads: number;
  /** Misses by the read's kind, and whether the block was already on its way (pushed or fetched, not landed). */
  kinds: { sequential: number; random: number; onTheWay: number };
  /** Modelled post-copy duration (cut-over to the last block landing), ms. */
  postcopyMs: number;
}

function simulate(o: ModelConfig, reqs: WorkloadRequest[], zeros: Bitmap, order: Order, truth: Float64Array): Outcome {
  const n = zeros.size;
  const areaBlocks = AREA / BS;
  const blockMs = (BS * 8 * 1000) / o.bandwidthBps;
  const heat = new HeatMap();
  const missing = new Bitmap(n, true);
  let i = 0;
  for (; i < reqs.length && reqs[i]!.atMs < o.warmupMs; i++) {
    const r = reqs[i]!;
    const a = Math.floor(r.offset / AREA);
    if (r.op === 'read') heat.recordRead(a, r.atMs);
    else heat.recordWrite(a, r.atMs);
  }
  const written = new Bitmap(n);
  for (let k = 0; k < i; k++) {
    const r = reqs[k]!;
    if (r.op === 'write') for (let b = Math.floor(r.offset / BS); b <= Math.floor((r.offset + r.length - 1) / BS); b++) written.set(b);
  }
  for (let b = 0; b < n; b++) if (zeros.get(b) && !written.get(b)) missing.clear(b);
  const post = reqs.slice(i);
  let seq: Iterable<number>;
  const areaCounts = (rs: WorkloadRequest[]) => {
    const truth = new HeatMap({ halfLifeMs: 1e15 });
    for (const r of rs) if (r.op === 'read') truth.recordRead(Math.floor(r.offset / AREA), 0);
    return truth.all(0);
  };
  const blockList = () => {
    const list: number[] = [];
    for (let b = missing.nextSet(0); b >= 0; b = missing.nextSet(b + 1)) list.push(b);
    return list;
  };
  const readCounts = (rs: WorkloadRequest[]) => {
    const c = new Float64Array(n);
    for (const r of rs) if (r.op === 'read') for (let b = Math.floor(r.offset / BS); b <= Math.floor((r.offset + r.length - 1) / BS); b++) c[b]!++;
    return c;
  };
  if (order === 'source block heat' || order === 'perfect block heat') {
    // The real plan (pushPlan, walkPlan): area heat and block heat from warm-up (what the source knows) or from the future.
    const rs = order === 'source block heat' ? reqs.slice(0, i) : post;
    const c = readCounts(rs);
    const areas = order === 'source block heat' ? heat.all(o.warmupMs) : areaCounts(rs);
    const blocks: BlockHeat[] = [];
    for (let b = 0; b < n; b++) if (c[b]! > 0) blocks.push({ block: b, reads: c[b]! });
    seq = walkPlan(missing.clone(), pushPlan(areas, blocks, areaBlocks), areaBlocks);
  } else if (order === 'oracle probability') {
    seq = blockList().sort((x, y) => truth[y]! - truth[x]! || x - y);
  } else if (order === 'clairvoyant') {
    const first = new Map<number, number>();
    for (const r of post) if (r.op === 'read') for (let b = Math.floor(r.offset / BS); b <= Math.floor((r.offset + r.length - 1) / BS); b++) if (!first.has(b)) first.set(b, r.atMs);
    const list: number[] = [];
    for (let b = missing.nextSet(0); b >= 0; b = missing.nextSet(b + 1)) list.push(b);
    seq = list.sort((x, y) => (first.get(x) ?? Infinity) - (first.get(y) ?? Infinity) || x - y);
  } else {
    let ord: AreaOrder = BLOCK_ORDER;
    if (order === 'source heat') ord = pushOrder(heat.all(o.warmupMs));
    if (order === 'perfect area heat') ord = pushOrder(areaCounts(post));
    seq = walkAreas(missing.clone(), ord, areaBlocks);
  }
  const arrival = new Float64Array(n).fill(Infinity);
  for (let b = 0; b < n; b++) if (!missing.get(b)) arrival[b] = 0;
  let left = missing.count;
  const it = seq[Symbol.iterator]();
  let linkFree = o.warmupMs;
  const pushUntil = (t: number) => {
    while (linkFree + blockMs <= t && left > 0) {
      const x = it.next();
      if (x.done) break;
      const b = x.value;
      if (arrival[b] !== Infinity) continue;
      linkFree += blockMs;
      arrival[b] = linkFree + o.rttMs / 2;
      left--;
    }
  };
  let misses = 0;
  let reads = 0;
  const kinds = { sequential: 0, random: 0, onTheWay: 0 };
  for (const r of post) {
    pushUntil(r.atMs);
    if (left === 0 && linkFree + o.rttMs / 2 <= r.atMs) break;
    const a = Math.floor(r.offset / BS);
    const z = Math.floor((r.offset + r.length - 1) / BS);
    for (let b = a; b <= z; b++) {
      if (r.op === 'read') {
        reads++;
        if (arrival[b]! > r.atMs) {
          misses++;
          if (r.seq) kinds.sequential++;
          else kinds.random++;
          if (arrival[b] !== Infinity) kinds.onTheWay++;
        }
      }
      if (arrival[b] === Infinity) {
        const whole = r.op === 'write' && r.offset <= b * BS && r.offset + r.length >= (b + 1) * BS;
        if (whole) arrival[b] = r.atMs;
        else {
          linkFree = Math.max(linkFree, r.atMs) + blockMs;
          arrival[b] = r.atMs + o.rttMs + o.queueMs;
        }
        left--;
      }
    }
  }
  return { misses, reads, kinds, postcopyMs: linkFree + o.rttMs / 2 - o.warmupMs };
}

/** Runs every push order on every workload and run (seed k for run k, as bench:postcopy). */
export async function modelPushOrders(o: ModelConfig): Promise<ModelResult> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bound-'));
  const results: Record<string, Record<string, number[]>> = {};
  /** Misses and blocks read per run (to hold the model against bench:postcopy's measured counts). */
  const counted: Record<string, Record<string, Array<[number, number]>>> = {};
  const plainTime: Record<string, number[]> = {};
  const missKinds: Record<string, Record<string, Array<Outcome['kinds']>>> = {};
  try {
    const horizonMs = o.warmupMs + 4 * ((o.size * 8 * 1000) / o.bandwidthBps) + 60_000;
    const fiu = o.only.includes('fiu') ? [...parseFiuTrace(synthesizeFiuTrace({ imageBytes: o.size, seconds: Math.ceil(horizonMs / 1000), seed: 391 }))] : [];
    for (let run = 1; run <= o.runs; run++) {
      const img = join(dir, `img-${run}`);
      await generateImage(img, o.size, { seed: run });
      const zeros = zeroBlocks(img, o.size);
      rmSync(img);
      for (const w of o.only) {
        const gen = w === 'fiu' ? undefined : new RequestGenerator(resolveProfile(w, { linkBitsPerSecond: o.bandwidthBps, imageBytes: o.size, blockSize: BS }).params, run);
        const truth = gen ? generatorBlockReadRates(gen, BS) : fiuBlockReadRates({ imageBytes: o.size, seconds: 1, seed: 391 }, BS);
        const src: Source = gen ?? new FiuReplay(fiu, { imageBytes: o.size });
        const reqs: WorkloadRequest[] = [];
        for (let r = src.next(); r && r.atMs < horizonMs; r = src.next()) reqs.push(r);
        for (const ord of ORDERS) {
          const { misses, reads, kinds, postcopyMs } = simulate(o, reqs, zeros, ord, truth);
          if (ord === 'plain') (plainTime[w] ??= []).push(postcopyMs / 1000);
          ((missKinds[w] ??= {})[ord] ??= []).push(kinds);
          ((results[w] ??= {})[ord] ??= []).push(reads ? misses / reads : 0);
          ((counted[w] ??= {})[ord] ??= []).push([misses, reads]);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med: Record<string, Record<string, number>> = {};
  const ratio: Record<string, Record<string, number>> = {};
  for (const w of o.only) {
    med[w] = {};
    ratio[w] = {};
    for (const ord of ORDERS) med[w][ord] = median(results[w]![ord]!);
    for (const ord of ORDERS) ratio[w][ord] = Math.round((med[w][ord]! / med[w].plain!) * 1000) / 1000;
  }
  const worst = (ord: Order) => Math.max(...o.only.map((w) => ratio[w]![ord]!));
  const headline: Record<string, number> = { source_heat: worst('source heat'), source_block_heat: worst('source block heat'), perfect_area_heat: worst('perfect area heat'), perfect_block_heat: worst('perfect block heat'), oracle_probability: worst('oracle probability'), clairvoyant: worst('clairvoyant') };
  return { medians: med, ratios: ratio, headline, counts: counted, plainPostcopyS: plainTime, missKinds: missKinds };
}
