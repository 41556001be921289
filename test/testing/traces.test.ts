// The recorded guest traces checked in under testing/traces/ (issue 18): each parses, holds
// requests over at least 10 minutes with nothing dropped, says in its .json what it holds (the
// docs table is made from those), all fit the size bound, and a window of one replays through
// `flimcd simulate`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../testing/qemu/guest.ts';
import { summarizeTrace, summaryTable, type TraceMeta } from '../../testing/traces/trace-summary.ts';
import { TRACE_JOBS } from '../../testing/traces/guest-jobs.ts';
import { readTraceText } from '../../src/workload/trace-recorder.ts';

const DIR = join(REPO_ROOT, 'testing', 'traces');
const traces = readdirSync(DIR).filter((f) => f.endsWith('.fiu.zst')).sort();
const metas = new Map<string, TraceMeta>();
for (const t of traces) metas.set(t, JSON.parse(readFileSync(join(DIR, t.replace(/\.fiu\.zst$/, '.json')), 'utf8')) as TraceMeta);

test('at least 4 recorded traces, all together under 20 MiB', () => {
  assert.ok(traces.length >= 4, `found ${traces.join(', ')}`);
  const total = traces.reduce((n, t) => n + statSync(join(DIR, t)).size, 0);
  assert.ok(total < 20 * 1048576, `${total} bytes`);
  for (const m of metas.values()) assert.ok((TRACE_JOBS as readonly string[]).includes(m.job), m.job);
});

for (const t of traces) {
  test(`${t}: parses, >= 10 min, nothing dropped, its .json summary is true`, () => {
    const meta = metas.get(t)!;
    const s = summarizeTrace(join(DIR, t));
    assert.ok(s.requests > 1000 && s.reads > 0 && s.writes > 0, JSON.stringify(s));
    assert.ok(s.duration_s >= 600, `${s.duration_s} s`);
    assert.equal(meta.recorder.dropped, 0);
    assert.equal(meta.recorder.recorded, s.requests);
    assert.deepEqual(s, meta.summary);
    // Recorded on the ext4 image of the tree: every offset inside it.
    assert.ok(meta.image.bytes > 0 && /^[0-9a-f]{64}$/.test(meta.image.sha256) && /^[0-9a-f]{64}$/.test(meta.image.tree_sha256));
  });
}

test('docs/design.md carries the summary table of the checked-in traces', () => {
  const docs = readFileSync(join(REPO_ROOT, 'docs', 'design.md'), 'utf8');
  assert.ok(docs.includes(summaryTable([...metas.values()].sort((a, b) => a.job.localeCompare(b.job)))), 'run npm run -s traces:record -- summary --update-docs');
});

test('a window of a recorded trace replays through flimcd simulate', () => {
  const t = traces.find((x) => x.startsWith('backup')) ?? traces[0]!;
  const lines = readTraceText(join(DIR, t)).split('\n').filter((l) => l && !l.startsWith('#'));
  // The first 2 minutes of guest time.
  const t0 = BigInt(lines[0]!.split(' ')[0]!);
  const window = lines.filter((l) => BigInt(l.split(' ')[0]!) - t0 < 120_000_000_000n);
  assert.ok(window.length > 100 && window.length < lines.length);
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-traces-'));
  try {
    const file = join(dir, 'window.fiu');
    writeFileSync(file, window.join('\n') + '\n');
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'flimcd-src.mjs'), 'simulate', '--workload', `trace:${file}`, '--image-size', '1GiB',
      '--algorithm', 'postcopy,flimcd', '--bandwidth', '1Gbit', '--rtt', '10ms', '--time-scale', '4', '--json'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, FLIMCD_LOG_LEVEL: 'silent' } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { results: { algorithm: string; verified: boolean; blocks_read_postcopy: number }[] };
    assert.deepEqual(out.results.map((x) => x.algorithm).sort(), ['flimcd', 'postcopy']);
    for (const x of out.results) assert.equal(x.verified, true, x.algorithm);
    assert.ok(out.results.find((x) => x.algorithm === 'postcopy')!.blocks_read_postcopy > 0, 'the window reads during post-copy');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
