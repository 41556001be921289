// The progress helper in its non-TTY, JSON and TTY modes, driven by plain status objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createProgress, reportSummary } from '../../src/cli/progress.ts';
import { formatStatus, statusLine } from '../../src/cli/status-format.ts';

function sink(tty = false) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number; text: () => string };
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (text += d));
  if (tty) {
    s.isTTY = true;
    s.columns = 160;
    (s as unknown as { cursorTo: () => boolean }).cursorTo = () => true;
    (s as unknown as { clearLine: () => boolean }).clearLine = () => true;
    (s as unknown as { moveCursor: () => boolean }).moveCursor = () => true;
    (s as unknown as { clearScreenDown: () => boolean }).clearScreenDown = () => true;
  }
  s.text = () => text;
  return s;
}

const raw = (over: Record<string, unknown> = {}) => ({ role: 'source', phase: 'precopy', blocks: 1000, blockSize: 65536, remainingBlocks: 400, wireBytes: 1_000_000, linkRateBps: 80e6, rttMs: 20, round: 1, counts: { dataBlocks: 600 }, ...over });
const flush = () => new Promise((r) => setImmediate(r));

test('json mode: a phase event per change, throttled progress events, named events and the report as one object per line', async () => {
  const out = sink();
  const stream = sink();
  let now = 0;
  const p = createProgress({ json: true, out, stream, now: () => now, intervalMs: 1000 });
  p.event('listening', { nbd: 'unix:/tmp/vm.sock' });
  p.update(raw());
  now = 500;
  p.update(raw({ remainingBlocks: 300, wireBytes: 6_000_000 })); // within the interval: nothing
  now = 1200;
  p.update(raw({ remainingBlocks: 200, wireBytes: 11_000_000 }));
  now = 1300;
  p.update(raw({ phase: 'postcopy', remainingBlocks: 100, wireBytes: 12_000_000 }));
  p.done({ algorithm: 'flimcd', verified: true, wire_bytes: 123 });
  p.update(raw({ phase: 'done' })); // after done: ignored
  p.event('late');
  await flush();
  assert.equal(stream.text(), '', 'json mode writes nothing on the human stream');
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.event), ['listening', 'phase', 'progress', 'phase', 'report']);
  assert.equal(lines[0].nbd, 'unix:/tmp/vm.sock');
  assert.equal(lines[1].phase, 'precopy');
  assert.equal(lines[1].role, 'source');
  assert.equal(lines[1].progress, 0.6);
  assert.equal(lines[1].previous, undefined);
  assert.equal(lines[1].etaSeconds, Math.round(((400 * 65536 * 8) / 80e6) * 10) / 10);
  assert.equal(lines[2].progress, 0.8);
  assert.equal(lines[2].transferRateBps, ((11_000_000 - 1_000_000) * 8 * 1000) / 1200);
  assert.equal(lines[3].phase, 'postcopy');
  assert.equal(lines[3].previous, 'precopy');
  assert.equal(lines[3].progress, 0.9);
  assert.deepEqual(lines[4], { event: 'report', algorithm: 'flimcd', verified: true, wire_bytes: 123 });
});

test('plain (non-TTY) mode: one line per phase change and per event, the report summary on out', async () => {
  const out = sink();
  const stream = sink();
  const p = createProgress({ tty: false, out, stream, label: 'source' });
  p.update(raw());
  p.update(raw({ remainingBlocks: 350 }));
  p.update(raw({ remainingBlocks: 300 }));
  p.event('connected', { peer: 'tcp:10.0.0.2:7000', rttMs: 51 });
  p.event('cutover', {}, 'cut-over requested by the operator');
  p.update(raw({ phase: 'postcopy', remainingBlocks: 10 }));
  p.done({ verified: true, time_total_s: 12.345, time_precopy_s: 10, time_postcopy_s: 2.3, downtime_ms: 35.2, wire_bytes: 3 * 1024 ** 3, block_miss_rate: 0.0042 });
  p.stop(); // idempotent after done
  await flush();
  const lines = stream.text().trim().split('\n');
  assert.equal(lines.length, 4, stream.text());
  assert.match(lines[0]!, /^flimcd source: phase precopy \| source precopy 60\.0 % \| 400 blocks, 25\.0 MiB left \| 80\.0 Mbit\/s \| ETA 3 s \| wire 977 KiB$/);
  assert.equal(lines[1], 'flimcd source: connected peer=tcp:10.0.0.2:7000 rttMs=51');
  assert.equal(lines[2], 'flimcd source: cut-over requested by the operator');
  assert.match(lines[3]!, /^flimcd source: phase postcopy \(was precopy\) \| source postcopy 99\.0 %/);
  assert.equal(out.text(), 'migration verified, total 12.35 s, pre-copy 10.00 s, post-copy 2.30 s, downtime 35.2 ms, wire 3.00 GiB, miss rate 0.42 %\n');
});

test('plain mode takes a report formatter; stop() without a report prints nothing more', async () => {
  const out = sink();
  const stream = sink();
  const p = createProgress({ tty: false, out, stream, formatReport: (r) => `REPORT ${r.algorithm}\n` });
  p.update({ phase: 'waiting', role: 'target' });
  p.done({ algorithm: 'hybrid' });
  const q = createProgress({ tty: false, out, stream });
  q.update({ phase: 'precopy', role: 'target' });
  q.stop();
  q.done({ algorithm: 'x' });
  await flush();
  assert.equal(out.text(), 'REPORT hybrid\n');
  assert.deepEqual(stream.text().trim().split('\n'), ['flimcd target: phase waiting | target waiting', 'flimcd target: phase precopy | target precopy']);
});

test('watch polls a status function until done, and a failing read does not throw', async () => {
  const out = sink();
  let n = 0;
  const p = createProgress({ json: true, out, intervalMs: 0 });
  p.watch(() => {
    n++;
    if (n === 2) throw new Error('transient');
    return raw({ remainingBlocks: 1000 - n * 100 });
  }, 10);
  await new Promise((r) => setTimeout(r, 80));
  p.done();
  const seen = n;
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(n, seen, 'no polling after done');
  assert.ok(seen >= 3);
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines[0].event, 'phase');
  assert.ok(lines.slice(1).every((l) => l.event === 'progress'));
  assert.equal(lines.length, seen - 1);
});

test('tty mode draws a bar with phase, percentage, rate and ETA, and logs phase changes above it', async () => {
  const out = sink();
  const stream = sink(true);
  const p = createProgress({ out, stream });
  p.update(raw());
  p.update(raw({ phase: 'postcopy', remainingBlocks: 250 }));
  p.done({ verified: true });
  await flush();
  const text = stream.text();
  assert.match(text, /flimcd source: phase precopy/);
  assert.match(text, /flimcd source: phase postcopy \(was precopy\)/);
  assert.match(text, /flimcd source postcopy \|[█░]+\| 75\.0 % \| 80\.0 Mbit\/s \| ETA 2 s \| wire 977 KiB/);
  assert.equal(out.text(), 'migration verified\n');
});

test('status text: table and line show only what is known', () => {
  const table = formatStatus({ role: 'target', phase: 'postcopy', progress: 0.5, remainingBlocks: 500, blocks: 1000, blockSize: 65536, transferRateBps: 9.5e7, etaSeconds: 3725, receivedBytes: 5 << 20, readBlocks: 400, missBlocks: 3, blockMissRate: 0.0075 });
  assert.match(table, /^role +target$/m);
  assert.match(table, /^progress +50\.0 %$/m);
  assert.match(table, /^remaining +500 blocks, 31\.3 MiB of 1,000$/m);
  assert.match(table, /^rate +95\.0 Mbit\/s transfer$/m);
  assert.match(table, /^eta +1h02m$/m);
  assert.match(table, /^received +5\.00 MiB$/m);
  assert.match(table, /^misses +3 of 400 blocks read \(0\.75 %\)$/m);
  const pf = formatStatus({ role: 'target', phase: 'postcopy', readBlocks: 400, missBlocks: 3, missP50: 31.25, missP99: 80, prefetchRequested: 120, prefetchHits: 90, prefetchWastedBytes: 2 << 20, features: ['hot-order', 'prefetch'] });
  assert.match(pf, /^miss latency +p50 31\.3 ms, p99 80\.0 ms$/m);
  assert.match(pf, /^prefetch +90 hits, 120 blocks asked, 2\.00 MiB wasted$/m);
  assert.match(pf, /^features +hot-order, prefetch$/m);
  const bare = formatStatus({ role: 'source', phase: 'starting' });
  assert.equal(bare, 'role      source\nphase     starting\nprogress  –\neta       –\n');
  assert.equal(statusLine({ role: 'source', phase: 'done', progress: 1 }), 'source done 100.0 %');
  assert.equal(reportSummary({}), 'migration finished\n');
});
