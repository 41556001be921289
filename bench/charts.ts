/**
 * Benchmark charts: a vega-lite spec compiled and rendered headless by vega
 * to SVG, then rasterised to PNG by resvg. No browser, no network.
 */
import { existsSync } from 'node:fs';
import * as vl from 'vega-lite';
import * as vega from 'vega';
import { Resvg } from '@resvg/resvg-js';

export interface GroupedBarChart {
  title: string;
  /** Field plotted on y, and its axis label. */
  field: string;
  yTitle: string;
  rows: Array<Record<string, unknown>>;
  /** Groups along x, bars inside a group, small multiples by column. */
  x: string;
  bar: string;
  column: string;
  /** Bar order inside a group. */
  barOrder: string[];
  xOrder?: string[];
  columnOrder?: string[];
  logScale?: boolean;
}

const FONT_FILES = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'];

export async function renderChart(c: GroupedBarChart): Promise<{ svg: string; png: Buffer }> {
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: c.title,
    data: { values: c.rows },
    mark: { type: 'bar', tooltip: true },
    width: 170,
    height: 200,
    encoding: {
      column: { field: c.column, type: 'nominal', title: null, ...(c.columnOrder ? { sort: c.columnOrder } : {}) },
      x: { field: c.x, type: 'nominal', title: null, axis: { labelAngle: 0 }, ...(c.xOrder ? { sort: c.xOrder } : {}) },
      xOffset: { field: c.bar, type: 'nominal', sort: c.barOrder },
      y: { field: c.field, type: 'quantitative', title: c.yTitle, ...(c.logScale ? { scale: { type: 'symlog' } } : {}) },
      color: { field: c.bar, type: 'nominal', sort: c.barOrder, title: 'algorithm', scale: { scheme: 'tableau10' } },
    },
    config: { font: 'DejaVu Sans', background: 'white' },
  };
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const fontFiles = FONT_FILES.filter((f) => existsSync(f));
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { fontFiles, loadSystemFonts: fontFiles.length === 0, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  return { svg, png };
}
