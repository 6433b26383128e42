// The comparison page: several results.json files side by side, one column per run.
// buildComparison() is the model (pure, unit-tested); renderHtml()/renderMarkdown() draw it.
// The HTML is one self-contained file: inline CSS, no scripts, no network; every string
// that came from a results file is escaped.
import { readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { FAMILIES, formatKey, keyOf, parseKey } from '../catalogue/index.ts';
import { kernelLabel, type ClauseResult, type Results } from './results.ts';
import { renderPrfChart, CHART_CSS } from './chart.ts';
import { escapeHtml } from './html.ts';

export interface ComparisonRow {
  id: string;
  level: string;
  title: string;
  /** One cell per run; null where the run has no such clause (shown as '-'). */
  cells: (ClauseResult | null)[];
  /** The runs disagree on the status (a missing clause counts as a status of its own). */
  differs: boolean;
}

export interface ComparisonFamily {
  family: string;
  title: string;
  rows: ComparisonRow[];
  differences: number;
}

/**
 * One column per server and per variant it ran: `ptfs`, `ptfs@no-passthrough`, `bindfs`. A clause
 * id's @variant selects the column, so RW-002 and RW-002@no-passthrough share the row RW-002.
 */
export interface ComparisonColumn {
  label: string;
  run: Results;
  /** Index of the run (results file) this column comes from. */
  runIndex: number;
  variant: string | null;
}

export interface Comparison {
  runs: { label: string; run: Results; columns: number }[];
  columns: ComparisonColumn[];
  families: ComparisonFamily[];
  differences: number;
  /** Environment facts that differ between runs (kernel, options...): named so the page can flag them. */
  environmentDiffers: Set<string>;
}

const FAMILY_ORDER = Object.keys(FAMILIES);

/** RW-002[param]@variant -> sortable parts: family, number, param, variant. */
function idParts(id: string): { family: string; num: number; param: string; variant: string } {
  const k = parseKey(id);
  const dash = k.id.indexOf('-');
  const num = dash > 0 ? Number(k.id.slice(dash + 1)) : Number.NaN;
  if (!Number.isInteger(num)) return { family: k.id.split('-')[0] ?? id, num: Number.MAX_SAFE_INTEGER, param: id, variant: '' };
  return { family: k.id.slice(0, dash), num, param: k.param ?? '', variant: k.variant ?? '' };
}

/** Catalogue order: number, then the plain clause before its variants, then parameters. */
export function compareIds(a: string, b: string): number {
  const x = idParts(a);
  const y = idParts(b);
  if (x.num !== y.num) return x.num - y.num;
  if (x.variant !== y.variant) return x.variant === '' ? -1 : y.variant === '' ? 1 : x.variant < y.variant ? -1 : 1;
  if (x.param !== y.param) return x.param === '' ? -1 : y.param === '' ? 1 : x.param < y.param ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function familyOf(c: ClauseResult): string {
  return c.family || idParts(c.id).family;
}

function columnLabels(runs: Results[]): string[] {
  // the same server on several kernels (run --kernel): a column per kernel
  const base = runs.map((r) => r.server?.name || 'server');
  const names = base.map((n, i) =>
    base.filter((x) => x === n).length > 1 && new Set(runs.filter((r) => (r.server?.name || 'server') === n).map((r) => kernelLabel(r.platform))).size > 1
      ? `${n} on ${runs[i]!.platform?.guest ? 'uml' : 'host'} ${runs[i]!.platform?.kernel ?? '?'}`
      : n,
  );
  return names.map((n, i) => (names.filter((x) => x === n).length > 1 ? `${n} #${names.slice(0, i + 1).filter((x) => x === n).length}` : n));
}

export function environmentRows(run: Results): [string, string][] {
  const p = run.platform ?? ({} as Results['platform']);
  const o = run.options ?? ({} as Results['options']);
  const s = run.summary;
  return [
    ['server version', run.server?.version ?? 'unknown'],
    ['manifest', run.server?.manifest ?? ''],
    ['kernel', p.kernel === undefined ? '' : kernelLabel(p)],
    ['passthrough config', String(p.passthrough ?? '')],
    ['root', p.root ? 'yes' : 'no'],
    ['tracefs', p.tracefs ? 'yes' : 'no'],
    ['seed', o.seed === undefined ? '' : String(o.seed)],
    ['jobs', o.jobs === undefined ? '' : String(o.jobs)],
    ['strict', o.strict ? 'yes' : 'no'],
    ['selection', [...(o.families ?? []).map((f) => `--family ${f}`), ...(o.only ?? []).map((x) => `--only ${x}`)].join(' ') || 'all'],
    ['fusecert', `${run.tool ?? 'fusecert'} ${run.version ?? ''}`.trim()],
    ['started', run.started ?? ''],
    ['duration', formatDuration(run.durationMs)],
    ['summary', s ? `${s.pass} pass, ${s.fail} fail, ${s.skip} skip, ${s.hung} hung, ${s.xfail} xfail, ${s.xpass} xpass (exit ${s.exitCode})` : ''],
    ['errors', String(run.errors?.length ?? 0)],
  ];
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function buildComparison(runs: Results[]): Comparison {
  const labels = columnLabels(runs);
  const columns: ComparisonColumn[] = [];
  const cellMaps: Map<string, ClauseResult>[] = [];
  runs.forEach((run, runIndex) => {
    const byVariant = new Map<string | null, Map<string, ClauseResult>>([[null, new Map()]]);
    for (const c of run.clauses ?? []) {
      const k = keyOf(c);
      const v = k.variant ?? null;
      if (!byVariant.has(v)) byVariant.set(v, new Map());
      byVariant.get(v)!.set(formatKey({ id: k.id, param: k.param }), c);
    }
    const variants = [...byVariant.keys()].sort((a, b) => (a === null ? -1 : b === null ? 1 : a < b ? -1 : 1));
    for (const v of variants) {
      columns.push({ label: v ? `${labels[runIndex]}@${v}` : labels[runIndex]!, run, runIndex, variant: v });
      cellMaps.push(byVariant.get(v)!);
    }
  });

  const first = new Map<string, ClauseResult>();
  for (const m of cellMaps) for (const [id, c] of m) if (!first.has(id)) first.set(id, c);

  const fams = new Map<string, ComparisonRow[]>();
  for (const [id, c0] of first) {
    const cells = cellMaps.map((m) => m.get(id) ?? null);
    // Suites run only some clauses per variant: a missing cell in a variant column is no difference,
    // a clause missing from a whole run is.
    const statuses = new Set(cells.flatMap((c, i) => (c ? [c.status] : columns[i]!.variant ? [] : ['-'])));
    const row: ComparisonRow = { id, level: c0.level, title: c0.title, cells, differs: columns.length > 1 && statuses.size > 1 };
    const f = familyOf(c0);
    if (!fams.has(f)) fams.set(f, []);
    fams.get(f)!.push(row);
  }
  const rank = (f: string) => (FAMILY_ORDER.includes(f) ? FAMILY_ORDER.indexOf(f) : FAMILY_ORDER.length);
  const families = [...fams.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([family, rows]) => {
      rows.sort((a, b) => (a.differs === b.differs ? compareIds(a.id, b.id) : a.differs ? -1 : 1));
      const title = (FAMILIES as Record<string, { title: string }>)[family]?.title ?? family;
      return { family, title, rows, differences: rows.filter((r) => r.differs).length };
    });

  const environmentDiffers = new Set<string>();
  if (runs.length > 1) {
    const envs = runs.map(environmentRows);
    for (let i = 0; i < envs[0]!.length; i++) {
      const key = envs[0]![i]![0];
      if (['manifest', 'started', 'duration', 'summary', 'server version', 'errors'].includes(key)) continue;
      if (new Set(envs.map((e) => e[i]![1])).size > 1) environmentDiffers.add(key);
    }
  }
  return {
    runs: runs.map((run, i) => ({ label: labels[i]!, run, columns: columns.filter((c) => c.runIndex === i).length })),
    columns,
    families,
    differences: families.reduce((n, f) => n + f.differences, 0),
    environmentDiffers,
  };
}

// ---- cell text ---------------------------------------------------------------------------

const scalar = (v: unknown) => typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean';

function formatValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return String(v);
}

/** Figures worth showing in a cell: scalar evidence of SHOULD/INFO clauses (PRF ratios, latencies). */
export function cellFigures(c: ClauseResult, max = 3): string {
  if (c.level === 'MUST') return '';
  return Object.entries(c.evidence ?? {})
    .filter(([, v]) => scalar(v))
    .slice(0, max)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(', ');
}

/** The one-line explanation of a cell: the reason, else the figures. */
export function cellReason(c: ClauseResult | null): string {
  if (!c) return 'not run';
  const reason = (c.reason ?? '').replace(/\s+/g, ' ').trim();
  const figures = cellFigures(c);
  return [reason, figures].filter(Boolean).join(' — ');
}

export function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}

// ---- HTML --------------------------------------------------------------------------------

export { escapeHtml };

const anchor = (id: string) => 'c-' + id.replace(/[^A-Za-z0-9_-]/g, (ch) => `_${ch.charCodeAt(0).toString(16)}`);

const CSS = `
:root{--pass:#1a7f37;--fail:#cf222e;--skip:#6e7781;--hung:#8250df;--xfail:#9a6700;--xpass:#bc4c00;--bg:#fff;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328;background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:24px 0 8px}
.sub{color:#59636e;margin:0 0 16px}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f6f8fa;position:sticky;top:0}
table.env td:first-child,table.env th:first-child{width:180px;color:#59636e}
table.env tr.envdiff td{background:#fff8c5}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;white-space:nowrap}
td.title{color:#59636e;max-width:380px}
td.level{white-space:nowrap;font-size:12px}
tr.diff td.id{border-left:4px solid var(--xpass)}
.st{display:inline-block;min-width:44px;padding:0 6px;border-radius:10px;color:#fff;font-weight:600;font-size:12px;text-align:center}
.st-pass{background:var(--pass)}.st-fail{background:var(--fail)}.st-skip{background:var(--skip)}
.st-hung{background:var(--hung)}.st-xfail{background:var(--xfail)}.st-xpass{background:var(--xpass)}
.st-none{background:#eaeef2;color:#59636e}
.st-warn{background:#bf8700}
.why{display:block;color:#59636e;font-size:12px;margin-top:2px;word-break:break-word}
.story summary{cursor:pointer;font-size:12px;color:#0969da}
.story p{font-size:12px;margin:4px 0}
.story pre{font-size:11px;white-space:pre-wrap;max-width:60ch;background:#f6f8fa;padding:4px}
details{border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:0 10px}
details>summary{cursor:pointer;padding:8px 0;font-weight:600}
details>summary .count{font-weight:400;color:#59636e}
details[open]>summary{border-bottom:1px solid var(--line);margin-bottom:8px}
details table{margin-bottom:10px}
ul.diffs{columns:3;padding-left:18px}
.errors{color:var(--fail)}
footer{margin-top:24px;color:#59636e;font-size:12px}
`;

function statusBadge(c: ClauseResult | null): string {
  if (!c) return '<span class="st st-none">-</span>';
  // A failed SHOULD/INFO clause is a warning, not a failure of the run: show it as such.
  const warn = c.status === 'fail' && c.level !== 'MUST';
  const cls = warn ? 'st-warn' : `st-${escapeHtml(c.status)}`;
  const text = warn ? 'warn' : c.status;
  return `<span class="st ${cls}">${escapeHtml(text)}</span>`;
}

function htmlCell(c: ClauseResult | null): string {
  const why = cellReason(c);
  const title = c ? `${c.status}${c.durationMs !== undefined ? ` in ${formatDuration(c.durationMs)}` : ''}${why ? ': ' + why : ''}` : 'not run by this server';
  const reason = c ? (c.reason ?? '').replace(/\s+/g, ' ').trim() : '';
  const figures = c ? cellFigures(c) : '';
  const lines = [reason && truncate(reason, 140), figures].filter(Boolean).map((l) => `<span class="why">${escapeHtml(l)}</span>`);
  // the failure's story: the whole reason and what the kernel sent and the server answered
  const story =
    c && (c.status === 'fail' || c.status === 'hung' || c.status === 'xfail') && (c.timeline?.length || reason.length > 140)
      ? `<details class="story"><summary>why</summary><p>${escapeHtml(reason)}</p>${c.timeline?.length ? `<pre>${escapeHtml(c.timeline.join('\n'))}</pre>` : ''}</details>`
      : '';
  return `<td title="${escapeHtml(title)}">${statusBadge(c)}${lines.join('')}${story}</td>`;
}

/** `IOM-001[O_RDONLY+O_DIRECT]@direct` -> `IOM-001@direct`: the clause a parameterised instance belongs to. */
const baseId = (id: string) => id.replace(/\[[^\]]*\]/, '');

/** The differing rows, a parameterised clause's instances grouped under its id, in page order. */
export function differenceGroups(cmp: Comparison): { base: string; rows: ComparisonRow[]; total: number }[] {
  const groups = new Map<string, { base: string; rows: ComparisonRow[]; total: number }>();
  for (const f of cmp.families)
    for (const r of f.rows) {
      const base = baseId(r.id);
      let g = groups.get(base);
      if (!g) groups.set(base, (g = { base, rows: [], total: 0 }));
      g.total++;
      if (r.differs) g.rows.push(r);
    }
  return [...groups.values()].filter((g) => g.rows.length > 0);
}

/** `fail: mergerfs, go-fuse · pass: ptfs · -: bindfs`: each status with the columns that have it. */
export function statusesOf(cmp: Comparison, r: ComparisonRow): string {
  const by = new Map<string, string[]>();
  r.cells.forEach((c, i) => {
    const st = c?.status ?? '-';
    let l = by.get(st);
    if (!l) by.set(st, (l = []));
    l.push(cmp.columns[i]!.label);
  });
  return [...by].map(([st, cols]) => `${st}: ${cols.join(', ')}`).join(' · ');
}

/** `ptfs 12 pass · mergerfs 9 fail, 3 skip`: per column, how its instances of the group stand. */
export function countsOf(cmp: Comparison, rows: readonly ComparisonRow[]): string {
  return cmp.columns
    .map((col, i) => {
      const n = new Map<string, number>();
      for (const r of rows) {
        const st = r.cells[i]?.status ?? '-';
        n.set(st, (n.get(st) ?? 0) + 1);
      }
      return `${col.label} ${[...n].map(([st, k]) => `${k} ${st}`).join(', ')}`;
    })
    .join(' · ');
}

export function renderHtml(cmp: Comparison): string {
  const cols = cmp.columns;
  const names = cmp.runs.map((r) => r.label);
  const kernels = [...new Set(cmp.runs.map((r) => kernelLabel(r.run.platform)))];
  const out: string[] = [];
  out.push('<!doctype html>', '<html lang="en"><head><meta charset="utf-8">');
  out.push('<meta name="viewport" content="width=device-width,initial-scale=1">');
  out.push(`<title>${escapeHtml(`fusecert comparison: ${names.join(' vs ')}`)}</title>`);
  out.push(`<style>${CSS}${CHART_CSS}</style></head><body>`);
  out.push(`<h1>fusecert comparison: ${names.map(escapeHtml).join(' vs ')}</h1>`);
  const versions = cmp.runs.map((r) => `${escapeHtml(r.label)}: ${escapeHtml(r.run.server?.version ?? 'unknown')}`).join('; ');
  out.push(
    `<p class="sub">Linux ${kernels.map(escapeHtml).join(', ')} · ${versions} · ${cmp.differences} clause${cmp.differences === 1 ? '' : 's'} differ</p>`,
  );

  // environment of each run
  out.push('<h2>Runs</h2><table class="env"><thead><tr><th></th>');
  for (const r of cmp.runs) out.push(`<th>${escapeHtml(r.label)}</th>`);
  out.push('</tr></thead><tbody>');
  const envs = cmp.runs.map((r) => environmentRows(r.run));
  for (let i = 0; i < (envs[0]?.length ?? 0); i++) {
    const key = envs[0]![i]![0];
    out.push(`<tr${cmp.environmentDiffers.has(key) ? ' class="envdiff"' : ''}><td>${escapeHtml(key)}</td>`);
    for (const e of envs) out.push(`<td>${escapeHtml(e[i]![1])}</td>`);
    out.push('</tr>');
  }
  out.push('</tbody></table>');
  for (const r of cmp.runs) {
    if (r.run.errors?.length) {
      out.push(`<p class="errors">${escapeHtml(r.label)}: ${r.run.errors.map(escapeHtml).join('<br>')}</p>`);
    }
  }

  // differences at a glance
  if (cols.length > 1) {
    out.push(`<h2>Differences (${cmp.differences})</h2>`);
    if (cmp.differences === 0) out.push('<p class="sub">Every clause has the same status for every server.</p>');
    else {
      out.push('<ul class="diffs">');
      for (const g of differenceGroups(cmp)) {
        if (g.rows.length === 1) {
          const r = g.rows[0]!;
          out.push(`<li><a href="#${anchor(r.id)}">${escapeHtml(r.id)}</a>: ${escapeHtml(statusesOf(cmp, r))}</li>`);
          continue;
        }
        // a parameterised clause: one line with counts per server, the instances behind it
        out.push(
          `<li><details class="diff-group"><summary><a href="#${anchor(g.rows[0]!.id)}">${escapeHtml(g.base)}</a> (${g.rows.length} of ${g.total} instances differ): ${escapeHtml(countsOf(cmp, g.rows))}</summary><ul>`,
        );
        for (const r of g.rows) out.push(`<li><a href="#${anchor(r.id)}">${escapeHtml(r.id)}</a>: ${escapeHtml(statusesOf(cmp, r))}</li>`);
        out.push('</ul></details></li>');
      }
      out.push('</ul>');
    }
  }

  // the PRF figures as a chart (src/report/chart.ts); the same figures stay in the PRF table
  const chart = renderPrfChart(cmp);
  if (chart) out.push(chart);

  // one collapsible section per family; open when it holds a difference or a failure
  out.push('<h2>Clauses</h2>');
  for (const f of cmp.families) {
    const bad = f.rows.some((r) => r.cells.some((c) => c && (c.status === 'fail' || c.status === 'hung')));
    const open = f.differences > 0 || bad || cols.length === 1;
    out.push(`<details class="family" id="family-${escapeHtml(f.family)}"${open ? ' open' : ''}>`);
    out.push(
      `<summary>${escapeHtml(f.family)} — ${escapeHtml(f.title)} <span class="count">(${f.rows.length} clause${f.rows.length === 1 ? '' : 's'}, ${f.differences} differ)</span></summary>`,
    );
    out.push('<table><thead><tr><th>clause</th><th>level</th><th>title</th>');
    for (const c of cols) out.push(`<th>${escapeHtml(c.label)}</th>`);
    out.push('</tr></thead><tbody>');
    for (const r of f.rows) {
      out.push(`<tr id="${anchor(r.id)}"${r.differs ? ' class="diff"' : ''}><td class="id">${escapeHtml(r.id)}</td>`);
      out.push(`<td class="level">${escapeHtml(r.level)}</td><td class="title">${escapeHtml(r.title)}</td>`);
      for (const c of r.cells) out.push(htmlCell(c));
      out.push('</tr>');
    }
    out.push('</tbody></table></details>');
  }
  out.push(
    `<footer>Generated by fusecert from ${cmp.runs.length} results file${cmp.runs.length === 1 ? '' : 's'}. A column per server and per variant it ran (@variant). A warn badge is a SHOULD or INFO clause that failed: it does not fail the run.</footer>`,
  );
  out.push('</body></html>');
  return out.join('\n') + '\n';
}

// ---- Markdown ----------------------------------------------------------------------------

/** Table-cell safe: no pipes, no newlines, no HTML. */
export function escapeMd(s: unknown): string {
  return String(s ?? '')
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

function mdCell(c: ClauseResult | null): string {
  if (!c) return '-';
  const warn = c.status === 'fail' && c.level !== 'MUST';
  const status = warn ? 'warn' : c.status;
  const why = cellReason(c);
  return escapeMd(why ? `${status}: ${truncate(why, 100)}` : status);
}

export function renderMarkdown(cmp: Comparison): string {
  const cols = cmp.columns;
  const out: string[] = [];
  out.push(`# fusecert comparison: ${cmp.runs.map((r) => escapeMd(r.label)).join(' vs ')}`, '');
  out.push(`| | ${cmp.runs.map((r) => escapeMd(r.label)).join(' | ')} |`);
  out.push(`|---|${cmp.runs.map(() => '---').join('|')}|`);
  const envs = cmp.runs.map((r) => environmentRows(r.run));
  for (let i = 0; i < (envs[0]?.length ?? 0); i++) {
    const key = envs[0]![i]![0];
    const mark = cmp.environmentDiffers.has(key) ? ' (differs)' : '';
    out.push(`| ${escapeMd(key + mark)} | ${envs.map((e) => escapeMd(e[i]![1]) || ' ').join(' | ')} |`);
  }
  out.push('');
  if (cols.length > 1) out.push(`**${cmp.differences} clause${cmp.differences === 1 ? '' : 's'} differ** (listed first in each family).`, '');
  for (const f of cmp.families) {
    out.push(`## ${escapeMd(f.family)} — ${escapeMd(f.title)} (${f.differences} differ)`, '');
    out.push(`| clause | level | ${cols.map((c) => escapeMd(c.label)).join(' | ')} |`);
    out.push(`|---|---|${cols.map(() => '---').join('|')}|`);
    for (const r of f.rows)
      out.push(`| ${r.differs ? '**' + escapeMd(r.id) + '**' : escapeMd(r.id)} | ${escapeMd(r.level)} | ${r.cells.map(mdCell).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n');
}

// ---- files -------------------------------------------------------------------------------

/** A file given to `compare` that is not a results.json it can read: the message names the file and what was expected. */
export class ResultsInputError extends Error {}

const MAX_RESULTS_BYTES = 256 * 1024 * 1024;
const str = z.string();
const num = z.number();
const Clause = z.looseObject({
  id: str.min(1),
  family: str.optional(),
  level: str,
  title: str,
  status: z.enum(['pass', 'fail', 'skip', 'hung', 'xfail', 'xpass']),
  reason: str.optional(),
  durationMs: num.optional(),
  evidence: z.record(str, z.unknown()).optional(),
  timeline: z.array(str).optional(),
});
/** The fields the comparison reads, with the types it reads them as; what a run of this version always writes. */
const ResultsShape = z.looseObject({
  tool: z.literal('fusecert'),
  version: str.regex(/^\d+\.\d+\.\d+/, 'a version like 1.2.3'),
  started: str,
  durationMs: num,
  platform: z.looseObject({ kernel: str, passthrough: str, root: z.boolean(), tracefs: z.boolean() }),
  server: z.looseObject({ name: str, version: str, manifest: str.optional() }),
  options: z
    .looseObject({ only: z.array(str), families: z.array(str), strict: z.boolean(), seed: num, jobs: num })
    .partial()
    .optional(),
  clauses: z.array(Clause),
  errors: z.array(str).optional(),
  summary: z.record(str, num).optional(),
});

const shown = (f: string) =>
  /^[\x21-\x7e]+$/.test(f) ? f : JSON.stringify(f).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const text: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    ENOTDIR: 'a component of the path is not a directory',
    ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'name too long',
    EISDIR: 'a directory',
  };
  return (code && text[code]) || `cannot read it (${code ?? (e as Error).message})`;
}

/**
 * Read results files for a comparison. A file that is missing, not a regular file, not JSON, not a
 * fusecert results file, or one written by a fusecert of another major version is a
 * ResultsInputError naming the file and what was expected: the page would be wrong or empty.
 */
export function loadResults(files: string[], version?: string): Results[] {
  const major = version?.split('.')[0];
  return files.map((f) => {
    const bad = (what: string) => new ResultsInputError(`${shown(f)}: ${what}`);
    let st;
    try {
      st = statSync(f);
    } catch (e) {
      throw bad(`${errnoText(e)}; expected a results.json written by \`fusecert run\``);
    }
    if (!st.isFile())
      throw bad(`not a regular file (a ${st.isDirectory() ? 'directory' : 'device, pipe or socket'}); expected a results.json written by \`fusecert run\``);
    if (st.size > MAX_RESULTS_BYTES) throw bad(`${st.size} bytes: too large for a results.json (at most ${MAX_RESULTS_BYTES})`);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw bad((e as NodeJS.ErrnoException).code ? errnoText(e) : 'not JSON; expected a results.json written by `fusecert run`');
    }
    const tool = (raw as { tool?: unknown } | null)?.tool;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || tool !== 'fusecert') {
      throw bad('not a fusecert results file (expected a JSON object with "tool": "fusecert" and a "clauses" array)');
    }
    const v = (raw as { version?: unknown }).version;
    if (typeof v === 'string' && major !== undefined && v.split('.')[0] !== major) {
      throw bad(
        `written by fusecert ${v.slice(0, 40)}; this is fusecert ${version}, which reads results of version ${major}.x (rerun \`fusecert run\` with this version)`,
      );
    }
    const r = ResultsShape.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const where =
        issue.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, '') || '(top level)';
      const what = issue.code === 'invalid_type' ? `expected ${issue.expected}` : issue.message;
      throw bad(
        `${where}: ${what.replace(/\s+/g, ' ').slice(0, 200)} (expected a results.json written by fusecert ${major ?? ''}${major ? '.x' : ''})`.replace(
          ' )',
          ')',
        ),
      );
    }
    return raw as Results;
  });
}

/** Write the comparison of results files to target: .md gives Markdown, anything else HTML. */
export function writeComparison(files: string[], target: string, version?: string): void {
  const cmp = buildComparison(loadResults(files, version));
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, target.endsWith('.md') ? renderMarkdown(cmp) : renderHtml(cmp));
}
