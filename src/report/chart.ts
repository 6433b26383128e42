// The PRF figures of a comparison as a chart: grouped horizontal bars, one group per figure
// (read ratio, write ratio, requests per MiB, open+close latency), one bar per column of the
// comparison (server, or server@variant). Inline SVG only: no script, no font, nothing fetched;
// every string that came from a results file is escaped. prfFigures() is the model (pure,
// unit-tested); renderPrfChart() draws it.
import type { Comparison } from './compare.ts';
import { escapeHtml } from './html.ts';
import type { ClauseResult, Status } from './results.ts';

export interface PrfBar {
  /** The comparison column: `ptfs`, `ptfs@no-passthrough`. */
  label: string;
  runIndex: number;
  variant: string | null;
  /** null: the column has no such figure (not run, or skipped before measuring). */
  value: number | null;
  /** PRF-004 only: the same open+close on the backing tmpfs, drawn as a tick on the bar. */
  native: number | null;
  /** PRF-001/002: the ~95 % interval of the median, drawn as an error bar (null: not measured, older results) */
  interval: [number, number] | null;
  status: Status | null;
  /** What the tooltip says besides the value: the raw figures, status and reason. */
  detail: string;
}

export interface PrfFigure {
  id: string;
  key: string;
  title: string;
  /** How a value is printed after its bar. */
  unit: string;
  lowerIsBetter: boolean;
  /** Distinct thresholds of the bars (SHOULD ratios): drawn as reference lines. */
  thresholds: number[];
  bars: PrfBar[];
}

interface FigureSpec {
  id: string;
  key: string;
  title: string;
  unit: string;
  lowerIsBetter: boolean;
  ratio: boolean;
}

export const DEFAULT_THRESHOLD = 0.8;

const FIGURES: FigureSpec[] = [
  { id: 'PRF-001', key: 'readRatio', title: 'PRF-001 sequential read, mount ÷ native tmpfs (higher is better)', unit: '×', lowerIsBetter: false, ratio: true },
  {
    id: 'PRF-002',
    key: 'writeRatio',
    title: 'PRF-002 sequential write, mount ÷ native tmpfs (higher is better)',
    unit: '×',
    lowerIsBetter: false,
    ratio: true,
  },
  { id: 'PRF-003', key: 'requestsPerMiB', title: 'PRF-003 FUSE requests per MiB of I/O (lower is better)', unit: 'req/MiB', lowerIsBetter: true, ratio: false },
  { id: 'PRF-004', key: 'openCloseUs', title: 'PRF-004 open+close latency in µs (lower is better)', unit: 'µs', lowerIsBetter: true, ratio: false },
];

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function formatFigure(v: number): string {
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(Math.abs(v) >= 1 ? 3 : 2)));
}

function detailOf(spec: FigureSpec, c: ClauseResult): string {
  const e = c.evidence ?? {};
  const parts: string[] = [];
  if (spec.ratio && num(e[`${spec.key}Low`]) !== null && num(e.pairs) !== null)
    parts.push(`~95 % interval ${e[`${spec.key}Low`]}-${e[`${spec.key}High`]} of the median of ${e.pairs} pairs`);
  if (spec.ratio && num(e.mountMBs) !== null && num(e.nativeMBs) !== null)
    parts.push(`${formatFigure(e.mountMBs as number)} vs ${formatFigure(e.nativeMBs as number)} MB/s (mount vs backing tmpfs)`);
  if (typeof e.measurementProblem === 'string') parts.push(e.measurementProblem);
  if (spec.id === 'PRF-003') {
    if (num(e.requests) !== null && num(e.ioMiB) !== null) parts.push(`${e.requests} requests for ${e.ioMiB} MiB`);
    if (typeof e.top === 'string') parts.push(e.top);
  }
  if (spec.id === 'PRF-004' && num(e.nativeUs) !== null) parts.push(`native ${formatFigure(e.nativeUs as number)} µs`);
  const warn = c.status === 'fail' && c.level !== 'MUST';
  const reason = (c.reason ?? '').replace(/\s+/g, ' ').trim();
  parts.push(`${warn ? 'warn' : c.status}${reason ? ': ' + (reason.length > 160 ? reason.slice(0, 159) + '…' : reason) : ''}`);
  return parts.join('; ');
}

/** The PRF figures of every column; [] when no column has any (no chart is drawn). */
export function prfFigures(cmp: Comparison): PrfFigure[] {
  const rows = new Map((cmp.families.find((f) => f.family === 'PRF')?.rows ?? []).map((r) => [r.id, r]));
  const figures = FIGURES.map((spec): PrfFigure => {
    const row = rows.get(spec.id);
    const bars = cmp.columns.map((col, i): PrfBar => {
      const c = row?.cells[i] ?? null;
      const value = c ? num(c.evidence?.[spec.key]) : null;
      return {
        label: col.label,
        runIndex: col.runIndex,
        variant: col.variant,
        value,
        native: c && spec.id === 'PRF-004' ? num(c.evidence?.nativeUs) : null,
        interval:
          c && num(c.evidence?.[`${spec.key}Low`]) !== null && num(c.evidence?.[`${spec.key}High`]) !== null
            ? [c.evidence![`${spec.key}Low`] as number, c.evidence![`${spec.key}High`] as number]
            : null,
        status: c?.status ?? null,
        detail: c ? detailOf(spec, c) : 'not run',
      };
    });
    const thresholds = spec.ratio
      ? [...new Set(bars.flatMap((b, i) => (b.value === null ? [] : [num(row!.cells[i]!.evidence?.threshold) ?? DEFAULT_THRESHOLD])))]
          .filter((t) => t > 0)
          .sort()
      : [];
    return { id: spec.id, key: spec.key, title: spec.title, unit: spec.unit, lowerIsBetter: spec.lowerIsBetter, thresholds, bars };
  });
  // A column that measured nothing (a server whose run left out PRF) gets no row in any group.
  const measured = cmp.columns.map((_, i) => figures.some((f) => f.bars[i]!.value !== null));
  if (!measured.some(Boolean)) return [];
  for (const f of figures) f.bars = f.bars.filter((_, i) => measured[i]);
  return figures.filter((f) => f.bars.some((b) => b.value !== null));
}

/** A round axis end and step for values up to max: 1, 2 or 5 times a power of ten, about 5 ticks. */
export function niceScale(max: number): { end: number; step: number } {
  if (!(max > 0)) return { end: 1, step: 0.2 };
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  return { end: Math.ceil(max / step - 1e-9) * step, step };
}

// Colours of the bars, one per server (run), all at least 4.5:1 against the white page (the
// value labels are drawn in the text colour beside the bars, not on them). Variants of a server
// use its colour hatched.
export const PALETTE = ['#0969da', '#bc4c00', '#1a7f37', '#8250df', '#bf3989', '#0e7490', '#6e5d00', '#57606a'];
export const TEXT = '#1f2328';
export const MUTED = '#59636e';

const esc = escapeHtml;

const W = 1100;
const LABEL_W = 230;
const VALUE_W = 230;
const PLOT_X = LABEL_W;
const PLOT_W = W - LABEL_W - VALUE_W;
const ROW_H = 24;
const BAR_H = 16;
const GROUP_HEAD = 30;
const AXIS_H = 22;
const GROUP_GAP = 18;
const LEGEND_ROW = 22;

const px = (v: number) => Math.round(v * 10) / 10;
/** Width of 13px system-ui text, generously: only used to lay out the legend. */
const textWidth = (s: string) => Math.ceil(s.length * 7.2);

export const CHART_CSS = `
section.prf{margin:8px 0 16px}
section.prf svg{display:block;width:100%;max-width:${W}px;height:auto;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
section.prf .note{color:#59636e;font-size:12px;margin:4px 0 0}
`;

function legend(cmp: Comparison, figures: PrfFigure[], y: number): { svg: string[]; height: number } {
  const out: string[] = [];
  const runs = [...new Set(figures.flatMap((f) => f.bars.map((b) => b.runIndex)))];
  const hasVariant = figures.some((f) => f.bars.some((b) => b.variant !== null));
  const items: { w: number; svg: (x: number, y: number) => string }[] = [];
  for (const r of runs) {
    const name = cmp.runs[r]?.label ?? `run ${r + 1}`;
    const color = PALETTE[r % PALETTE.length]!;
    items.push({
      w: 24 + textWidth(name),
      svg: (x, yy) =>
        `<g><title>${esc(name)}: bars in this colour</title><rect x="${x}" y="${yy - 11}" width="18" height="12" fill="${color}"/><text x="${x + 24}" y="${yy}" fill="${TEXT}" font-size="13">${esc(name)}</text></g>`,
    });
  }
  if (hasVariant) {
    items.push({
      w: 24 + textWidth('hatched: server@variant'),
      svg: (x, yy) =>
        `<g><title>a hatched bar is a variant of the server: the column server@variant</title><rect x="${x}" y="${yy - 11}" width="18" height="12" fill="url(#prf-hatch-legend)" stroke="${MUTED}"/><text x="${x + 24}" y="${yy}" fill="${TEXT}" font-size="13">hatched: server@variant</text></g>`,
    });
  }
  const ths = [...new Set(figures.flatMap((f) => f.thresholds))];
  if (ths.length) {
    items.push({
      w: 24 + textWidth(`threshold ${ths.map(formatFigure).join(', ')} × native`),
      svg: (x, yy) =>
        `<g><title>the SHOULD threshold of PRF-001/002: a ratio below it is a warning</title><line x1="${x}" y1="${yy - 5}" x2="${x + 18}" y2="${yy - 5}" stroke="${TEXT}" stroke-width="2" stroke-dasharray="4 3"/><text x="${x + 24}" y="${yy}" fill="${TEXT}" font-size="13">threshold ${ths.map(formatFigure).join(', ')} × native</text></g>`,
    });
  }
  if (figures.some((f) => f.bars.some((b) => b.native !== null))) {
    items.push({
      w: 24 + textWidth('native tmpfs (PRF-004)'),
      svg: (x, yy) =>
        `<g><title>PRF-004: the same open+close on the backing tmpfs</title><line x1="${x + 9}" y1="${yy - 13}" x2="${x + 9}" y2="${yy + 3}" stroke="${TEXT}" stroke-width="2"/><text x="${x + 24}" y="${yy}" fill="${TEXT}" font-size="13">native tmpfs (PRF-004)</text></g>`,
    });
  }
  let x = 0;
  let row = 0;
  for (const it of items) {
    if (x > 0 && x + it.w > W) {
      x = 0;
      row++;
    }
    out.push(it.svg(x + 4, y + 15 + row * LEGEND_ROW));
    x += it.w + 16;
  }
  return {
    svg: [`<g class="legend" role="list" aria-label="legend">`, ...out.map((s) => s.replace('<g>', '<g role="listitem">')), '</g>'],
    height: (row + 1) * LEGEND_ROW + 8,
  };
}

function group(f: PrfFigure, y0: number): { svg: string[]; height: number } {
  const out: string[] = [];
  const max = Math.max(...f.bars.map((b) => Math.max(b.value ?? 0, b.native ?? 0, b.interval?.[1] ?? 0)), ...f.thresholds, f.unit === '×' ? 1 : 0);
  const { end, step } = niceScale(max);
  const x = (v: number) => PLOT_X + (v / end) * PLOT_W;
  const plotTop = y0 + GROUP_HEAD;
  const plotH = f.bars.length * ROW_H;
  out.push(`<g class="figure" id="prf-${esc(f.id)}" role="list" aria-label="${esc(f.title)}">`);
  out.push(`<text x="0" y="${y0 + 18}" fill="${TEXT}" font-size="15" font-weight="600">${esc(f.title)}</text>`);
  // gridlines and tick labels
  for (let i = 0; i * step <= end + 1e-9; i++) {
    const v = i * step;
    out.push(`<line x1="${px(x(v))}" y1="${plotTop}" x2="${px(x(v))}" y2="${plotTop + plotH}" stroke="${i === 0 ? MUTED : '#d0d7de'}" stroke-width="1"/>`);
    out.push(`<text x="${px(x(v))}" y="${plotTop + plotH + 15}" fill="${MUTED}" font-size="11" text-anchor="middle">${esc(formatFigure(v))}</text>`);
  }
  // the threshold goes under the bars and their labels, which carry a white halo to stay legible across it
  for (const t of f.thresholds) {
    out.push(
      `<g class="threshold"><title>threshold ${esc(formatFigure(t))} × native: a ratio below it is a SHOULD warning</title><line x1="${px(x(t))}" y1="${plotTop - 4}" x2="${px(x(t))}" y2="${plotTop + plotH + 2}" stroke="${TEXT}" stroke-width="2" stroke-dasharray="5 3"/></g>`,
    );
  }
  f.bars.forEach((b, i) => {
    const y = plotTop + i * ROW_H;
    const by = y + (ROW_H - BAR_H) / 2;
    const color = PALETTE[b.runIndex % PALETTE.length]!;
    const shown = b.value === null ? 'not measured' : `${formatFigure(b.value)} ${f.unit}`;
    // A ratio is judged against the threshold only where the clause applies (a passthrough data
    // path): a skip carries figures only, so its bar says so rather than "below".
    const threshold = f.thresholds.length ? Math.min(...f.thresholds) : null;
    const judged = b.status !== null && b.status !== 'skip';
    const below = b.value !== null && threshold !== null && judged && b.value < threshold;
    const note = b.value === null || threshold === null ? '' : below ? `warn, below ${formatFigure(threshold)}` : judged ? '' : 'figures only';
    const name = `${b.label}: ${shown}${note ? ` (${note})` : ''}`;
    out.push(`<g class="bar" role="listitem" data-column="${esc(b.label)}"><title>${esc(`${name} — ${f.id}; ${b.detail}`)}</title>`);
    out.push(`<text x="${PLOT_X - 8}" y="${by + BAR_H - 3}" fill="${TEXT}" font-size="13" text-anchor="end">${esc(b.label)}</text>`);
    if (b.value !== null) {
      const w = Math.max(px(x(b.value) - PLOT_X), 1.5);
      const fill = b.variant ? `url(#prf-hatch-${b.runIndex % PALETTE.length})` : color;
      out.push(`<rect class="bar-value" x="${PLOT_X}" y="${by}" width="${w}" height="${BAR_H}" fill="${fill}" stroke="${color}" stroke-width="1"/>`);
      if (b.native !== null)
        out.push(
          `<line class="native" x1="${px(x(b.native))}" y1="${by - 3}" x2="${px(x(b.native))}" y2="${by + BAR_H + 3}" stroke="${TEXT}" stroke-width="2"/>`,
        );
      if (b.interval) {
        const [lo, hi] = b.interval.map(x);
        const mid = by + BAR_H / 2;
        out.push(
          `<path class="interval" d="M${px(lo!)} ${mid}H${px(hi!)}M${px(lo!)} ${mid - 5}V${mid + 5}M${px(hi!)} ${mid - 5}V${mid + 5}" stroke="${TEXT}" stroke-width="1.5" fill="none"/>`,
        );
      }
      const range = b.interval ? ` (${formatFigure(b.interval[0])}–${formatFigure(b.interval[1])})` : '';
      const label = `${shown}${range}${b.native !== null ? ` · native ${formatFigure(b.native)} ${f.unit}` : ''}`;
      const extra = note ? `<tspan fill="${below ? TEXT : MUTED}"${below ? ' font-weight="600"' : ''}> · ${esc(note)}</tspan>` : '';
      out.push(
        `<text class="value" x="${px(Math.max(x(b.value), b.native !== null ? x(b.native) : 0, b.interval ? x(b.interval[1]) : 0) + 6)}" y="${by + BAR_H - 3}" fill="${TEXT}" font-size="13" stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke">${esc(label)}${extra}</text>`,
      );
    } else {
      out.push(`<text x="${PLOT_X + 6}" y="${by + BAR_H - 3}" fill="${MUTED}" font-size="12" font-style="italic">not measured</text>`);
    }
    out.push('</g>');
  });
  out.push('</g>');
  return { svg: out, height: GROUP_HEAD + plotH + AXIS_H + GROUP_GAP };
}

/** The chart section of the comparison page, or '' when no run has PRF figures. */
export function renderPrfChart(cmp: Comparison): string {
  const figures = prfFigures(cmp);
  if (figures.length === 0) return '';
  const body: string[] = [];
  let y = 0;
  const lg = legend(cmp, figures, y);
  y += lg.height;
  for (const f of figures) {
    const g = group(f, y);
    body.push(...g.svg);
    y += g.height;
  }
  const defs = [
    `<pattern id="prf-hatch-legend" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><rect width="3" height="6" fill="${MUTED}"/></pattern>`,
  ];
  for (let i = 0; i < PALETTE.length; i++) {
    defs.push(
      `<pattern id="prf-hatch-${i}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><rect width="3.5" height="6" fill="${PALETTE[i]}"/></pattern>`,
    );
  }
  const columns = figures[0]!.bars.length;
  const desc = `Grouped horizontal bars: ${figures.length} PRF figure${figures.length === 1 ? '' : 's'}, one bar per server and variant (${columns} columns). Values are printed beside the bars; the dashed line is the SHOULD threshold of the throughput ratios.`;
  return [
    '<section class="prf" aria-labelledby="prf-heading">',
    '<h2 id="prf-heading">Performance figures (PRF)</h2>',
    `<svg class="prf-chart" role="group" viewBox="0 0 ${W} ${y}" width="${W}" height="${y}" aria-labelledby="prf-svg-title" aria-describedby="prf-svg-desc">`,
    `<title id="prf-svg-title">PRF figures per server and variant</title><desc id="prf-svg-desc">${esc(desc)}</desc>`,
    `<defs>${defs.join('')}</defs>`,
    ...lg.svg,
    ...body,
    '</svg>',
    '<p class="note">Hover a bar for its raw figures (MB/s, request counts) and the clause status; the clause table below has the same figures.</p>',
    '</section>',
  ].join('\n');
}
