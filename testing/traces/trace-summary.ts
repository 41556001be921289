/**
 * What a recorded trace holds: duration, requests, read and write volume,
 * footprints (distinct 4 KiB pages read, written, touched). record.ts writes
 * it into each trace's .json; the summary table (docs/design.md, "Recorded
 * guest traces") is made from those; test/testing/traces.test.ts checks it
 * against the trace.
 */
import { statSync } from 'node:fs';
import { parseFiuTrace } from '../../src/workload/fiu-trace.ts';
import { readTraceText } from '../../src/workload/trace-recorder.ts';

const PAGE = 4096;

export interface TraceSummary {
  /** First to last request, seconds. */
  duration_s: number;
  requests: number;
  reads: number;
  writes: number;
  read_bytes: number;
  write_bytes: number;
  /** Distinct 4 KiB pages read / written / either. */
  read_footprint_bytes: number;
  write_footprint_bytes: number;
  footprint_bytes: number;
  /** The checked-in file. */
  compressed_bytes: number;
}

export interface TraceMeta {
  job: string;
  guest_secs: number;
  guest_mem_mib: number;
  kernel: string;
  recorder: { recorded: number; dropped: number; truncated: number };
  image: { bytes: number; sha256: string; tree_sha256: string; tree: string[]; mke2fs: string; fake_time: number };
  /** The guest's progress lines (FLIMCD-TRACE ...). */
  console: string[];
  summary: TraceSummary;
}

export function summarizeTrace(path: string): TraceSummary {
  let first: bigint | undefined;
  let last = 0n;
  const s = { requests: 0, reads: 0, writes: 0, read_bytes: 0, write_bytes: 0 };
  const read = new Set<number>();
  const written = new Set<number>();
  for (const r of parseFiuTrace(readTraceText(path))) {
    first ??= r.tsNs;
    if (r.tsNs > last) last = r.tsNs;
    s.requests++;
    const bytes = r.sectors * 512;
    const pages = r.op === 'read' ? read : written;
    if (r.op === 'read') {
      s.reads++;
      s.read_bytes += bytes;
    } else {
      s.writes++;
      s.write_bytes += bytes;
    }
    const p0 = Math.floor((r.lba * 512) / PAGE);
    const p1 = Math.ceil(((r.lba + r.sectors) * 512) / PAGE);
    for (let p = p0; p < p1; p++) pages.add(p);
  }
  let both = read.size;
  for (const p of written) if (!read.has(p)) both++;
  return {
    duration_s: first === undefined ? 0 : Math.round(Number(last - first) / 1e7) / 100,
    ...s,
    read_footprint_bytes: read.size * PAGE,
    write_footprint_bytes: written.size * PAGE,
    footprint_bytes: both * PAGE,
    compressed_bytes: statSync(path).size,
  };
}

const mib = (b: number) => (b / 1048576).toFixed(b < 10 * 1048576 ? 1 : 0);

/** The markdown table of docs/design.md. */
export function summaryTable(metas: readonly TraceMeta[]): string {
  const rows = [
    '| trace | what ran | guest time | requests (R / W) | read | written | footprint (read / written / touched) | file |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const m of metas) {
    const s = m.summary;
    rows.push(
      `| \`testing/traces/${m.job}.fiu.zst\` | ${JOB_DESCRIPTIONS[m.job] ?? m.job} | ${(s.duration_s / 60).toFixed(1)} min | ${s.reads} / ${s.writes} | ${mib(s.read_bytes)} MiB | ${mib(s.write_bytes)} MiB | ${mib(s.read_footprint_bytes)} / ${mib(s.write_footprint_bytes)} / ${mib(s.footprint_bytes)} MiB | ${mib(s.compressed_bytes)} MiB |`,
    );
  }
  return rows.join('\n');
}

export const JOB_DESCRIPTIONS: Record<string, string> = {
  walk: 'reads every file of the tree (find, xargs cat), again after 30 s',
  targz: 'tar/gzip of a tree directory into /archive, unpacked into /restore, next directory',
  backup: 'the same backup (tar/gzip of doc/, 136 MiB) started every 3 min (a run takes 2.5-4 min under TCG), a log line every 15 s between',
  spool: 'mail spool: bursts of deliveries (new file + mbox append, sync), oldest deleted',
  mixed: 'a day in small: indexer walk, mail, backup, tar/gzip + restore, idle gaps',
};
