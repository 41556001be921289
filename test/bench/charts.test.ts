// bench:paper's charts render headless: vega-lite → vega SVG → resvg PNG.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderChart } from '../../bench/charts.ts';

test('a grouped bar chart renders to SVG and PNG with one bar per row', async () => {
  const rows = [];
  for (const link of ['100 Mbit/s 10 ms', '1 Gbit/s 50 ms']) for (const workload of ['light', 'heavy']) for (const algorithm of ['precopy', 'flimcd']) rows.push({ link, workload, algorithm, time: Math.random() * 100 + 1 });
  const { svg, png } = await renderChart({ title: 'time', field: 'time', yTitle: 'time (s)', rows, x: 'workload', bar: 'algorithm', column: 'link', barOrder: ['precopy', 'flimcd'], logScale: true });
  assert.match(svg, /^<svg/);
  assert.equal((svg.match(/aria-roledescription="bar"/g) ?? []).length, rows.length);
  assert.match(svg, /workload: heavy; time \(s\): [\d.]+; algorithm: flimcd/);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.ok(png.length > 5000);
});
