/**
 * The true read popularity of each block under a synthetic workload: the
 * expected number of reads touching a block per request (per operation for
 * the FIU synthesis), computed from the generator's own parameters rather
 * than counted from a sample. A push ordered by this is the best any policy
 * that only knows the past can do on i.i.d. random reads (bench/postcopy-bound.ts).
 *
 * Profiles (generator.ts): a read picks an area from the mix of the write and
 * the independent read Zipf popularity; a random read lands on a uniformly
 * drawn size-aligned slot of the area; a sequential read continues a stream
 * that started at a uniform page of an area picked the same way and runs to
 * the area's end. In steady state the share of sequential reads falling on a
 * block is (visits of the block per run) / (requests per run), weighted by the
 * area's pick probability. With several request sizes the sizes are treated
 * independently (a stream's run mixes sizes; exact for one size).
 *
 * FIU synthesis (fiu-synth.ts): a file read touches the file's metadata page
 * and every block of the file; a database read one uniform page of a Zipf area.
 */
import { AREA_SIZE, PAGE_SIZE, type RequestGenerator } from './generator.ts';
import { FIU_FILE_REQUEST_PAGES, FIU_MIX, synthesizedFiuLayout, type FiuSynthOptions } from './fiu-synth.ts';

/** Expected block touches, per block of an area, of one request of `size` bytes. */
function inAreaTouches(size: number, blockSize: number): { random: Float64Array; sequential: Float64Array } {
  const blocks = AREA_SIZE / blockSize;
  const random = new Float64Array(blocks);
  const align = (size & (size - 1)) === 0 ? size : PAGE_SIZE;
  const slots = Math.floor((AREA_SIZE - size) / align) + 1;
  for (let s = 0; s < slots; s++) {
    const off = s * align;
    for (let b = Math.floor(off / blockSize); b <= Math.floor((off + size - 1) / blockSize); b++) random[b]! += 1 / slots;
  }
  // A run from each possible start page to the area's end: mean touches per request of the run.
  const sequential = new Float64Array(blocks);
  const starts = (AREA_SIZE - size) / PAGE_SIZE + 1;
  let requests = 0;
  for (let p = 0; p < starts; p++) {
    for (let cur = p * PAGE_SIZE; cur + size <= AREA_SIZE; cur += size) {
      requests++;
      for (let b = Math.floor(cur / blockSize); b <= Math.floor((cur + size - 1) / blockSize); b++) sequential[b]!++;
    }
  }
  for (let b = 0; b < blocks; b++) sequential[b]! /= requests;
  return { random, sequential };
}

/** Expected reads touching each block, per request of the generator (reads and writes together). */
export function generatorBlockReadRates(gen: RequestGenerator, blockSize: number): Float64Array {
  const p = gen.params;
  const perArea = AREA_SIZE / blockSize;
  const areaW = gen.readAreaWeights();
  const shape = new Float64Array(perArea);
  let total = 0;
  for (const s of p.sizes) total += s.weight;
  for (const s of p.sizes) {
    const t = inAreaTouches(s.bytes, blockSize);
    for (let b = 0; b < perArea; b++) shape[b]! += (s.weight / total) * (p.randomShare * t.random[b]! + (1 - p.randomShare) * t.sequential[b]!);
  }
  const n = Math.ceil(p.imageBytes / blockSize);
  const rates = new Float64Array(n);
  for (let a = 0; a < areaW.length; a++) {
    for (let j = 0; j < perArea; j++) {
      const b = a * perArea + j;
      if (b < n) rates[b] = p.readShare * areaW[a]! * shape[j]!;
    }
  }
  return rates;
}

/** Expected reads touching each block, per operation of the synthetic FIU trace with these options. */
export function fiuBlockReadRates(o: FiuSynthOptions, blockSize: number): Float64Array {
  const L = synthesizedFiuLayout(o);
  const pagesPerBlock = blockSize / PAGE_SIZE;
  const n = Math.ceil((L.pages * PAGE_SIZE) / blockSize);
  const rates = new Float64Array(n);
  const touch = (firstPage: number, pages: number, w: number) => {
    for (let b = Math.floor(firstPage / pagesPerBlock); b <= Math.floor((firstPage + pages - 1) / pagesPerBlock); b++) rates[b]! += w;
  };
  const fileW = L.file.weights();
  L.files.forEach((f, i) => {
    const w = FIU_MIX.fileRead * fileW[i]!;
    touch(f.meta, 1, w);
    for (let p = 0; p < f.size; p += FIU_FILE_REQUEST_PAGES) touch(f.first + p, Math.min(FIU_FILE_REQUEST_PAGES, f.size - p), w);
  });
  const dbW = L.dbArea.weights();
  for (let a = 0; a < dbW.length; a++) {
    for (let k = 0; k < 256; k++) {
      const page = Math.min(L.dbFirst + L.dbPages - 1, L.dbFirst + a * 256 + k);
      touch(page, 1, (FIU_MIX.dbRead * dbW[a]!) / 256);
    }
  }
  return rates;
}
