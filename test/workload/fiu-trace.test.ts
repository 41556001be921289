// FIU IODedup trace parsing (both digest variants, errors with line numbers),
// replay mapping onto an image with time scaling, digest → content, and the
// synthetic trace generator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFiuLine, parseFiuTrace, FiuReplay, digestTag, fillFromDigest } from '../../src/workload/fiu-trace.ts';
import { synthesizeFiuTrace } from '../../src/workload/fiu-synth.ts';
import { TraceFormatError } from '../../src/errors.ts';

const D1 = '531dee9c2f5f2c3c6a3a0c4e5b1f7a90';
const D2 = '0123456789abcdef0123456789ABCDEF';

test('parses a page-digest line and a multi-page line (concatenated or separate tokens)', () => {
  const r = parseFiuLine(`89967404486 4890 syslogd 904265560 8 W 6 0 ${D1}`, 1)!;
  assert.equal(r.tsNs, 89967404486n);
  assert.equal(r.pid, 4890);
  assert.equal(r.process, 'syslogd');
  assert.equal(r.lba, 904265560);
  assert.equal(r.sectors, 8);
  assert.equal(r.op, 'write');
  assert.deepEqual([r.major, r.minor], [6, 0]);
  assert.deepEqual(r.digests, [D1]);
  assert.equal(r.digestUnit, 'page');
  const m = parseFiuLine(`5 1 p 16 16 R 8 1 ${D1}${D2}`, 2)!;
  assert.deepEqual(m.digests, [D1, D2.toLowerCase()]);
  assert.equal(m.op, 'read');
  assert.deepEqual(parseFiuLine(`5 1 p 16 16 R 8 1 ${D1} ${D2}`, 3)!.digests, m.digests);
});

test('parses the per-sector digest variant', () => {
  const r = parseFiuLine(`7 1 p 0 2 W 8 0 ${D1}${D2}`, 1)!;
  assert.equal(r.digestUnit, 'sector');
  assert.equal(r.digests.length, 2);
  // 1 sector: one digest is both one page and one sector; pages win.
  assert.equal(parseFiuLine(`7 1 p 0 1 W 8 0 ${D1}`, 1)!.digestUnit, 'page');
});

test('malformed lines fail with the line number and the reason', () => {
  const bad: Array<[string, RegExp]> = [
    ['1 2 p 3 8 W 8 0', /found 8 fields/],
    [`x 2 p 3 8 W 8 0 ${D1}`, /timestamp "x"/],
    [`1 2 p 3 8 X 8 0 ${D1}`, /neither W nor R/],
    [`1 2 p 3 8 W 8 0 ${D1}zz`, /not hexadecimal/],
    [`1 2 p 3 8 W 8 0 ${D1}ab`, /whole number of MD5s/],
    [`1 2 p 3 24 W 8 0 ${D1}${D2}`, /2 digests for 24 sectors: expected 3 \(per 4 KiB page\) or 24/],
    [`1 2 p -3 8 W 8 0 ${D1}`, /lba "-3"/],
    [`1 2 p 3 0 W 8 0 ${D1}`, /size is 0/],
  ];
  for (const [line, re] of bad) {
    const text = `# header\n\n1 1 ok 0 8 R 8 0 ${D1}\n${line}\n`;
    assert.throws(() => [...parseFiuTrace(text)], (e: unknown) => e instanceof TraceFormatError && e.line === 4 && re.test(e.message) && e.message.startsWith('line 4: '), line);
  }
});

test('replay: pages widened, folded into the image, times relative and scaled, tags from digests', () => {
  const text = [
    `1000000000 1 a 1 2 W 8 0 ${D1}`, // bytes 512..1536 → page 0
    `1500000000 1 a 2048 16 R 8 0 ${D1}${D2}`, // 1 MiB, 8 KiB
    `2000000000 1 a ${(64 << 20) / 512 + 8} 8 W 8 0 ${D1}`, // beyond a 64 MiB image: folds to 4 KiB
    `1900000000 1 a 0 8 W 8 0 ${D2}`, // out of order: not back in time
  ].join('\n');
  const rep = new FiuReplay(parseFiuTrace(text), { imageBytes: 64 << 20, speed: 2 });
  const a = rep.next()!;
  assert.deepEqual([a.atMs, a.op, a.offset, a.length], [0, 'write', 0, 4096]);
  const b = rep.next()!;
  assert.deepEqual([b.atMs, b.op, b.offset, b.length, b.tag], [250, 'read', 1 << 20, 8192, 0]);
  const c = rep.next()!;
  assert.deepEqual([c.atMs, c.offset, c.length], [500, 4096, 4096]);
  assert.equal(c.tag, a.tag, 'equal digests, equal tags');
  const d = rep.next()!;
  assert.equal(d.atMs, 500);
  assert.notEqual(d.tag, a.tag);
  assert.equal(rep.next(), undefined);
  assert.equal(digestTag([D1]), digestTag([D1]));
  assert.ok(digestTag([D1]) > 0 && digestTag([D1]) < 2 ** 31);
});

test('content from a digest: equal digests equal bytes, different digests different bytes', () => {
  const a = new Uint8Array(4096);
  const b = new Uint8Array(4096);
  const c = new Uint8Array(4096);
  fillFromDigest(D1, a);
  fillFromDigest(D1, b);
  fillFromDigest(D2.toLowerCase(), c);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.some((x, i) => i > 64 && x !== 0), 'not a zero block');
});

test('the synthetic trace is deterministic, parses, and is skewed (hot areas, sequential runs)', () => {
  const lines = synthesizeFiuTrace({ imageBytes: 64 << 20, seconds: 20, seed: 5 });
  assert.deepEqual(lines, synthesizeFiuTrace({ imageBytes: 64 << 20, seconds: 20, seed: 5 }));
  const recs = [...parseFiuTrace(lines)];
  assert.equal(recs.length, lines.length);
  assert.ok(recs.length > 500, `${recs.length} requests`);
  for (let i = 1; i < recs.length; i++) assert.ok(recs[i]!.tsNs >= recs[i - 1]!.tsNs, 'time order');
  const reads = recs.filter((r) => r.op === 'read').length;
  assert.ok(reads / recs.length > 0.6, 'read-mostly');
  // Skew: the hottest 10 % of 1 MiB areas get most of the requests.
  const perArea = new Map<number, number>();
  for (const r of recs) {
    const a = Math.floor((r.lba * 512) / (1 << 20));
    perArea.set(a, (perArea.get(a) ?? 0) + 1);
  }
  const counts = [...perArea.values()].sort((x, y) => y - x);
  const top = counts.slice(0, Math.ceil(64 / 10)).reduce((s, x) => s + x, 0);
  assert.ok(top / recs.length > 0.4, `hottest 10 % of areas: ${(top / recs.length).toFixed(2)} of requests`);
  // Sequential runs: many requests start where the previous one ended.
  let seq = 0;
  for (let i = 1; i < recs.length; i++) if (recs[i]!.lba === recs[i - 1]!.lba + recs[i - 1]!.sectors) seq++;
  assert.ok(seq / recs.length > 0.3, `sequential share ${(seq / recs.length).toFixed(2)}`);
});
