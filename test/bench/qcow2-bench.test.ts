// bench:qcow2 in its quick mode: the JSON a reader (and the README's table) relies on, and target images equal to their sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requirePeers, run, runOk } from '../helpers/peers.ts';

const BENCH = fileURLToPath(new URL('../../bench/qcow2.ts', import.meta.url));

interface Stat { median: number; min: number; max: number }
interface CaseOut { wire_bytes: Stat; time_s: Stat; downtime_ms: Stat; from_backing_blocks: number; sent_data_blocks: number }
interface BenchOut {
  bench: string;
  runs: number;
  overlay: { data_bytes: number; compressed_bytes: number; compression_level: number; changes_via: string; files_added: number; files_rewritten: number; files_deleted: number };
  headline: { wire_over_overlay: number; wire_qcow2_over_raw: number; time_qcow2_over_raw: number };
  cases: { qcow2: CaseOut; raw: CaseOut };
  kept: { dir: string; source_overlay: string; target_overlay: string; source_raw: string; target_raw: string };
}

test('bench:qcow2 --quick prints its headline and cases, and both targets compare equal to their sources', async (t) => {
  if (!requirePeers(t, 'qemu-img', 'qemu-storage-daemon', 'mke2fs', 'debugfs')) return;
  const r = await run(process.execPath, ['--import', 'tsx', BENCH, '--quick', '--runs', '1', '--json', '--keep'], { timeoutMs: 120_000, env: { FLIMCD_LOG_LEVEL: 'silent' } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as BenchOut;
  t.after(() => rmSync(out.kept.dir, { recursive: true, force: true }));
  t.diagnostic(`headline ${JSON.stringify(out.headline)}; overlay ${JSON.stringify(out.overlay)}`);
  assert.equal(out.bench, 'qcow2');
  assert.equal(out.runs, 1);
  assert.ok(out.overlay.files_added > 0 && out.overlay.files_rewritten > 0 && out.overlay.files_deleted > 0, JSON.stringify(out.overlay));
  assert.ok(out.overlay.compressed_bytes > 0 && out.overlay.compressed_bytes <= out.overlay.data_bytes);
  for (const k of ['wire_over_overlay', 'wire_qcow2_over_raw', 'time_qcow2_over_raw'] as const) assert.ok(Number.isFinite(out.headline[k]) && out.headline[k] > 0, k);
  for (const c of [out.cases.qcow2, out.cases.raw]) {
    for (const s of [c.wire_bytes, c.time_s, c.downtime_ms]) assert.ok(s.min <= s.median && s.median <= s.max, JSON.stringify(s));
  }
  // The target holds the base: what the overlay does not allocate came from it, and only the top crossed.
  assert.ok(out.cases.qcow2.from_backing_blocks > 0);
  assert.equal(out.cases.raw.from_backing_blocks, 0);
  assert.ok(out.cases.qcow2.wire_bytes.median < out.cases.raw.wire_bytes.median);
  const k = out.kept;
  await runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', k.source_overlay, k.target_overlay]);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', k.source_raw, k.target_raw]);
  await runOk('qemu-img', ['check', k.target_overlay]);
  const info = JSON.parse((await runOk('qemu-img', ['info', '--output=json', k.target_overlay])).stdout) as { format: string; 'backing-filename'?: string };
  assert.equal(info.format, 'qcow2');
  assert.match(info['backing-filename'] ?? '', /target-base\.qcow2$/);
});
