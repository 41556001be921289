// The `files` profile's shape: files laid out by a size distribution, reads
// and writes front to back within a file, jobs that re-read the same file set
// every period, bursts with idle gaps; in time order, inside the image, and
// the same for the same seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FILES_PROFILE, FilesGenerator } from '../../src/workload/files-generator.ts';
import type { WorkloadRequest } from '../../src/workload/generator.ts';

const MiB = 2 ** 20;
const size = 256 * MiB;

function take(g: FilesGenerator, untilMs: number): WorkloadRequest[] {
  const out: WorkloadRequest[] = [];
  for (let r = g.next(); r && r.atMs < untilMs; r = g.next()) out.push(r);
  return out;
}

test('layout: files fill about 60 % of the image, mostly small files, most bytes in large ones', () => {
  const g = new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 1 });
  let bytes = 0;
  let small = 0;
  let large = 0;
  let prevEnd = 0;
  for (let i = 0; i < g.files; i++) {
    const f = g.fileAt(i);
    assert.ok(f.offset >= prevEnd && f.offset % 4096 === 0 && f.size % 4096 === 0, 'page-aligned, in order, not overlapping');
    prevEnd = f.offset + f.size;
    bytes += f.size;
    if (f.size <= 20 * 1024) small++;
    if (f.size >= 768 * 1024) large += f.size;
  }
  assert.ok(bytes > 0.5 * size && prevEnd <= FILES_PROFILE.FILL * size, `${bytes}`);
  assert.ok(small > 0.5 * g.files, 'most files are small');
  assert.ok(large > 0.5 * bytes, 'most bytes are in large files');
});

test('requests: in time order, inside the image, deterministic per seed', () => {
  const a = take(new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 7 }), 300_000);
  const b = take(new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 7 }), 300_000);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.slice(0, 50), take(new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 8 }), 300_000).slice(0, 50));
  for (let i = 1; i < a.length; i++) assert.ok(a[i]!.atMs >= a[i - 1]!.atMs, 'time order');
  assert.ok(a.every((r) => r.offset >= 0 && r.length > 0 && r.offset + r.length <= size && r.length <= FILES_PROFILE.CHUNK));
  assert.ok(a.some((r) => r.op === 'write' && r.tag > 0) && a.every((r) => (r.op === 'read') === (r.tag === 0)));
});

test('sequential within a file: most requests continue where the previous one of their stream ended', () => {
  const reqs = take(new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 2 }), 600_000);
  const ends = new Set<number>();
  let continued = 0;
  for (const r of reqs) {
    if (ends.has(r.offset)) continued++;
    ends.add(r.offset + r.length);
  }
  // Only a file's first request starts afresh; files of several chunks make most requests continuations.
  assert.ok(continued > 0.5 * reqs.length, `${continued} of ${reqs.length}`);
});

test('periodic jobs re-read the same file set; bursts leave idle gaps', () => {
  const g = new FilesGenerator({ imageBytes: size, linkBitsPerSecond: 100e6, seed: 3 });
  const reqs = take(g, 3 * FILES_PROFILE.JOB_PERIOD_MS[1]);
  // Pages read in more than one job period: the jobs' sets come back.
  const periods = new Map<number, Set<number>>();
  for (const r of reqs) {
    if (r.op !== 'read' || r.length !== FILES_PROFILE.CHUNK) continue;
    const p = Math.floor(r.atMs / FILES_PROFILE.JOB_PERIOD_MS[0]);
    let s = periods.get(r.offset);
    if (!s) periods.set(r.offset, (s = new Set()));
    s.add(p);
  }
  const reread = [...periods.values()].filter((s) => s.size >= 2).length;
  assert.ok(reread > 100, `${reread} chunks read again in a later period`);
  // Bursts: the gaps between requests include long idle ones (seconds) and many short ones.
  let idle = 0;
  for (let i = 1; i < reqs.length; i++) if (reqs[i]!.atMs - reqs[i - 1]!.atMs > 2000) idle++;
  assert.ok(idle >= 5, `${idle} idle gaps of over 2 s`);
});
