import { describe, expect, test } from 'vitest';
import { buildComparison, renderHtml } from './compare.ts';
import { prfFigures, renderPrfChart, niceScale, formatFigure, PALETTE, TEXT, MUTED, DEFAULT_THRESHOLD } from './chart.ts';
import { prfRuns } from './chart.testdata.ts';
import { clauseResult, results, twoRuns } from './compare.testdata.ts';

/** The SVG of one figure group, and its bars: column label, rect width, printed value. */
function group(svg: string, id: string) {
  const start = svg.indexOf(`<g class="figure" id="prf-${id}"`);
  expect(start).toBeGreaterThan(-1);
  const end = svg.indexOf('<g class="figure"', start + 1);
  const g = svg.slice(start, end === -1 ? undefined : end);
  const bars = [...g.matchAll(/<g class="bar" role="listitem" data-column="([^"]*)"><title>([^<]*)<\/title>([\s\S]*?)<\/g>/g)].map((m) => ({
    column: m[1]!,
    title: m[2]!,
    width: Number(/<rect class="bar-value"[^>]* width="([\d.]+)"/.exec(m[3]!)?.[1] ?? NaN),
    value: /<text class="value"[^>]*>([^<]*)/.exec(m[3]!)?.[1] ?? null,
  }));
  return { g, bars };
}

/** WCAG relative luminance contrast of two #rrggbb colours. */
function contrast(a: string, b: string): number {
  const lum = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x! + 0.05) / (y! + 0.05);
}

describe('PRF chart model', () => {
  test('one figure per PRF clause, one bar per column, values from the evidence', () => {
    const figs = prfFigures(buildComparison(prfRuns()));
    expect(figs.map((f) => f.id)).toEqual(['PRF-001', 'PRF-002', 'PRF-003', 'PRF-004']);
    const labels = ['ptfs', 'ptfs@no-passthrough', 'passthrough_hp', 'passthrough_hp@no-passthrough', 'mergerfs'];
    for (const f of figs) expect(f.bars.map((b) => b.label)).toEqual(labels);
    expect(figs[0]!.bars.map((b) => b.value)).toEqual([1.01, 0.19, 1.03, 0.12, 0.97]);
    expect(figs[1]!.bars.map((b) => b.status)).toEqual(['fail', 'skip', 'fail', 'skip', 'pass']);
    expect(figs[2]!.bars.map((b) => b.value)).toEqual([0.57, 5.08, 0.59, 5.6, 0.05]);
    expect(figs[3]!.bars.map((b) => [b.value, b.native])).toEqual([
      [202.6, 49.7],
      [216, 67.1],
      [217.1, 56.2],
      [221.9, 73.2],
      [240.5, 112.1],
    ]);
    expect(figs[0]!.thresholds).toEqual([0.8]);
    expect(figs[2]!.thresholds).toEqual([]);
    expect(figs[0]!.bars[0]!.detail).toContain('6060 vs 6000 MB/s');
  });
  test('a ratio measured with an interval gets an error bar from its low to its high end, printed beside the value', () => {
    const runs = prfRuns();
    const c = runs[0]!.clauses.find((x) => x.id === 'PRF-001')!;
    c.evidence = { ...c.evidence, readRatioLow: 0.95, readRatioHigh: 1.05, pairs: 17 };
    const figs = prfFigures(buildComparison(runs));
    expect(figs[0]!.bars.map((b) => b.interval)).toEqual([[0.95, 1.05], null, null, null, null]);
    expect(figs[0]!.bars[0]!.detail).toContain('~95 % interval 0.95-1.05 of the median of 17 pairs');
    const { g, bars } = group(renderPrfChart(buildComparison(runs)), 'PRF-001');
    expect(bars[0]!.value).toContain('1.01 × (0.95–1.05)');
    const paths = [...g.matchAll(/<path class="interval" d="M([\d.]+) [\d.]+H([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(paths).toHaveLength(1);
    // the error bar spans 0.1 of the axis around the bar's end (the bar is 1.01 long)
    const [lo, hi] = paths[0]!;
    expect(hi! - lo!).toBeCloseTo((bars[0]!.width / 1.01) * 0.1, 0);
  });
  test('a column without any figure gets no bar; a missing figure is a bar slot marked "not measured"', () => {
    const [a, b] = twoRuns(); // ptfs measured PRF-001 and PRF-003, bindfs skipped without figures
    const figs = prfFigures(buildComparison([a, b]));
    expect(figs.map((f) => f.id)).toEqual(['PRF-001', 'PRF-003']);
    expect(figs[0]!.bars.map((b) => b.label)).toEqual(['ptfs']);
    const runs = prfRuns();
    runs[2]!.clauses = runs[2]!.clauses.filter((c) => c.id !== 'PRF-004');
    const f4 = prfFigures(buildComparison(runs))[3]!;
    expect(f4.bars.at(-1)).toMatchObject({ label: 'mergerfs', value: null });
    const svg = renderPrfChart(buildComparison(runs));
    expect(group(svg, 'PRF-004').bars.at(-1)).toMatchObject({ column: 'mergerfs', value: null });
    expect(group(svg, 'PRF-004').g).toContain('not measured');
  });
  test('no figures at all: no chart', () => {
    const r = results('bindfs', [clauseResult('RW-001', 'pass'), clauseResult('PRF-001', 'skip', { level: 'SHOULD' })]);
    expect(prfFigures(buildComparison([r]))).toEqual([]);
    expect(renderPrfChart(buildComparison([r]))).toBe('');
    expect(renderHtml(buildComparison([r]))).not.toContain('<svg');
  });
  test('the threshold comes from the evidence, 0.8 when a run does not record it', () => {
    const runs = prfRuns();
    for (const c of runs[0]!.clauses) delete c.evidence.threshold;
    runs[2]!.clauses.find((c) => c.id === 'PRF-001')!.evidence.threshold = 0.9;
    expect(prfFigures(buildComparison(runs))[0]!.thresholds).toEqual([DEFAULT_THRESHOLD, 0.9]);
  });
  test('axis ends on a round number above the largest value', () => {
    expect(niceScale(1.05)).toEqual({ end: 1.25, step: 0.25 });
    expect(niceScale(5.6)).toEqual({ end: 6, step: 2 });
    expect(niceScale(240.5)).toEqual({ end: 250, step: 50 });
    expect(niceScale(0)).toEqual({ end: 1, step: 0.2 });
    expect([formatFigure(202.64), formatFigure(5.08), formatFigure(0.0123), formatFigure(1.01)]).toEqual(['203', '5.08', '0.012', '1.01']);
  });
});

describe('PRF chart SVG', () => {
  const cmp = buildComparison(prfRuns());
  const svg = renderPrfChart(cmp);
  test('a bar per column in every group, its length proportional to the value, the value printed', () => {
    const read = group(svg, 'PRF-001').bars;
    expect(read.map((b) => b.column)).toEqual(cmp.columns.map((c) => c.label));
    expect(read.map((b) => b.value)).toEqual(['1.01 ×', '0.19 ×', '1.03 ×', '0.12 ×', '0.97 ×']);
    // same scale within a group: width / value is constant (to the 0.1 px rounding)
    const perUnit = read.map((b, i) => b.width / [1.01, 0.19, 1.03, 0.12, 0.97][i]!);
    for (const p of perUnit) expect(Math.abs(p - perUnit[0]!)).toBeLessThan(1);
    const lat = group(svg, 'PRF-004');
    expect(lat.bars[0]!.value).toBe('203 µs · native 49.7 µs');
    expect(lat.g.match(/<line class="native"/g)).toHaveLength(5);
  });
  test('ratios get the dashed threshold line; a warn says it is below, a skip says figures only', () => {
    const write = group(svg, 'PRF-002');
    expect(write.g.match(/<g class="threshold">/g)).toHaveLength(1);
    expect(write.g).toMatch(/<title>threshold 0\.8 × native/);
    expect(write.bars[0]!.title).toMatch(/^ptfs: 0\.63 × \(warn, below 0\.8\) — PRF-002; 1575 vs 2500 MB\/s/);
    expect(write.bars[1]!.title).toMatch(/^ptfs@no-passthrough: 0\.36 × \(figures only\)/);
    expect(write.bars[4]!.title).toMatch(/^mergerfs: 0\.84 × — PRF-002/);
    expect(group(svg, 'PRF-003').g).not.toContain('class="threshold"');
  });
  test('variants are hatched in their server colour; each server has a legend entry', () => {
    const read = group(svg, 'PRF-001').g;
    expect(read).toMatch(/data-column="ptfs"><title>[^<]*<\/title>\s*<text[^>]*>ptfs<\/text>\s*<rect class="bar-value"[^>]*fill="#0969da"/);
    expect(read).toMatch(/data-column="ptfs@no-passthrough">[\s\S]*?fill="url\(#prf-hatch-0\)" stroke="#0969da"/);
    expect(read).toMatch(/data-column="mergerfs">[\s\S]*?fill="#1a7f37"/);
    const legend = svg.slice(svg.indexOf('<g class="legend"'), svg.indexOf('<g class="figure"'));
    for (const n of ['ptfs', 'passthrough_hp', 'mergerfs', 'hatched: server@variant', 'threshold 0.8 × native', 'native tmpfs (PRF-004)'])
      expect(legend).toContain(`>${n}</text>`);
  });
  test('accessible: titled svg, a <title> per bar, text colours with at least 4.5:1 contrast, bar colours distinct', () => {
    expect(svg).toMatch(/<svg class="prf-chart" role="group"[^>]*aria-labelledby="prf-svg-title"/);
    expect(svg.match(/<g class="bar"[^>]*><title>/g)).toHaveLength(4 * 5);
    for (const c of [TEXT, MUTED, ...PALETTE]) expect(contrast(c, '#ffffff')).toBeGreaterThanOrEqual(4.5);
    expect(new Set(PALETTE).size).toBe(PALETTE.length);
  });
  test('server names and reasons from results files are escaped', () => {
    const runs = prfRuns();
    runs[0]!.server.name = '<svg onload=alert(1)>';
    runs[1]!.clauses.find((c) => c.id === 'PRF-002')!.reason = '</title><script>alert(2)</script>';
    const out = renderPrfChart(buildComparison(runs));
    expect(out).not.toMatch(/<svg onload|<script/);
    expect(out).toContain('&lt;svg onload=alert(1)&gt;');
    expect(out).toContain('&lt;/title&gt;&lt;script&gt;');
  });
  test('self-contained: no script, font, link or URL; the page keeps the clause table', () => {
    expect(svg).not.toMatch(/<script|<link|@import|@font-face|src=|https?:\/\/|xlink:href|\bhref=/i);
    const html = renderHtml(cmp);
    expect(html).not.toMatch(/<script|<link|@font-face|src=|https?:\/\//i);
    expect(html.indexOf('<section class="prf"')).toBeGreaterThan(-1);
    expect(html.indexOf('<section class="prf"')).toBeLessThan(html.indexOf('<h2>Clauses</h2>'));
    expect(html).toMatch(/<details class="family" id="family-PRF"/);
    expect(html).toContain('readRatio=1.01');
  });
});
