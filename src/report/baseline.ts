// Baseline gating (issue 15): a run compared with an earlier run of the same server fails only on
// what got worse. compareWithBaseline() is pure (unit-tested on hand-made results); the run stores
// its answer in results.baseline, and the JUnit and console writers read it from there.
import { isFailure, type ClauseResult, type Results, type Status } from './results.ts';

/**
 * How far (relative) a PRF figure's new interval must lie below the baseline's interval before it
 * counts as worse: the default of --baseline-tolerance. The intervals carry each run's own noise;
 * the tolerance covers what moves a whole run (README: the figures it was chosen on).
 */
export const DEFAULT_TOLERANCE = 0.1;

/** The evidence figures compared with the baseline: higher is better (passthrough / native throughput). */
export const FIGURES = ['readRatio', 'writeRatio'] as const;

export interface BaselineEntry {
  id: string;
  /** Status in this run ('absent': not run this time). */
  now: Status | 'absent';
  /** Status in the baseline ('absent': the baseline did not run the clause). */
  before: Status | 'absent';
  /** This run's reason (new, known) or the baseline's (improved). */
  reason: string;
}

export interface FigureChange {
  id: string;
  figure: string;
  before: number;
  now: number;
  /** the ~95 % intervals of the two medians, when both runs measured them (PRF since issue 24) */
  beforeInterval?: [number, number];
  nowInterval?: [number, number];
  /** (now - before) / before: -0.25 is a 25 % drop. */
  change: number;
}

export interface BaselineComparison {
  /** The baseline file as the user named it, its start time and the fusecert that wrote it. */
  file: string;
  started: string;
  version: string;
  tolerance: number;
  /** Failures of this run that were not failures in the baseline (or that the baseline did not run). */
  new: BaselineEntry[];
  /** Failures of this run that were failures in the baseline too. */
  known: BaselineEntry[];
  /** Failures of the baseline that pass now. */
  improved: BaselineEntry[];
  /** Figures that dropped by more than the tolerance: worse, like a new failure. */
  figureDrops: FigureChange[];
  /** Figures that rose by more than the tolerance: reported, never gating. */
  figureGains: FigureChange[];
  /** Clauses of the baseline this run did not run (a narrower selection): reported, never gating. */
  notRun: string[];
  /** Errors of this run outside any clause: they always gate, a run with them is incomplete. */
  errors: number;
  /** 1 when something got worse (a new failure, a figure drop, a run error), else 0. */
  exitCode: number;
}

const failing = (c: ClauseResult | undefined, strict: boolean) => c !== undefined && isFailure(c, strict);

function figure(c: ClauseResult | undefined, key: string): number | null {
  const v = c?.evidence?.[key];
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null;
}

/** The figure's interval [low, high], when the run measured one. */
function interval(c: ClauseResult | undefined, key: string): [number, number] | null {
  const lo = figure(c, `${key}Low`);
  const hi = figure(c, `${key}High`);
  return lo !== null && hi !== null && lo <= hi ? [lo, hi] : null;
}

/** A figure the run itself flagged as a measurement problem (faster than the path allows). */
const suspect = (c: ClauseResult | undefined, key: string) => c?.evidence?.[`${key}Suspect`] === true;

/**
 * Compare a finished run with a baseline run of the same server. A clause is judged by the run's
 * own rule (isFailure, under this run's --strict for both sides, so a change of --strict is no
 * regression of the server): failing now and not failing in the baseline is new, failing in both
 * is known, failing in the baseline and passing now is improved. A clause the baseline did not run
 * has no history: its failure is new. readRatio/writeRatio dropping by more than `tolerance`
 * (relative) is worse whatever the clause's status: decided on the figures' ~95 % intervals when
 * both runs have them (the new interval entirely below the old one's low end less the
 * tolerance), on the medians otherwise; a figure either run flagged as a measurement problem is
 * not compared.
 */
export function compareWithBaseline(now: Results, base: Results, opts: { strict: boolean; tolerance: number; file: string }): BaselineComparison {
  const before = new Map(base.clauses.map((c) => [c.id, c]));
  const seen = new Set<string>();
  const out: BaselineComparison = {
    file: opts.file,
    started: base.started,
    version: base.version,
    tolerance: opts.tolerance,
    new: [],
    known: [],
    improved: [],
    figureDrops: [],
    figureGains: [],
    notRun: [],
    errors: now.errors.length,
    exitCode: 0,
  };
  for (const c of now.clauses) {
    seen.add(c.id);
    const b = before.get(c.id);
    const entry = (reason: string): BaselineEntry => ({ id: c.id, now: c.status, before: b?.status ?? 'absent', reason });
    if (failing(c, opts.strict)) (failing(b, opts.strict) ? out.known : out.new).push(entry(c.reason));
    else if (failing(b, opts.strict) && (c.status === 'pass' || c.status === 'xpass')) out.improved.push(entry(b!.reason));
    for (const key of FIGURES) {
      const x = figure(b, key);
      const y = figure(c, key);
      if (x === null || y === null || suspect(b, key) || suspect(c, key)) continue;
      const change = (y - x) / x;
      const f: FigureChange = { id: c.id, figure: key, before: x, now: y, change: Math.round(change * 1000) / 1000 };
      const bi = interval(b, key);
      const ni = interval(c, key);
      if (bi && ni) {
        // on the intervals: a drop only when the new interval lies below the old one by more than
        // the tolerance, a gain only when it lies above it by more; overlapping intervals are noise
        f.beforeInterval = bi;
        f.nowInterval = ni;
        if (ni[1] < bi[0] * (1 - opts.tolerance)) out.figureDrops.push(f);
        else if (ni[0] > bi[1] * (1 + opts.tolerance)) out.figureGains.push(f);
      } else if (change < -opts.tolerance) out.figureDrops.push(f);
      else if (change > opts.tolerance) out.figureGains.push(f);
    }
  }
  out.notRun = base.clauses.filter((c) => !seen.has(c.id)).map((c) => c.id);
  out.exitCode = out.new.length > 0 || out.figureDrops.length > 0 || out.errors > 0 ? 1 : 0;
  return out;
}

/** What the baseline says about one clause of this run, for JUnit and the console: null when nothing. */
export function baselineMark(cmp: BaselineComparison | undefined, id: string): { tag: 'new' | 'known' | 'improved'; figures: FigureChange[] } | null {
  if (!cmp) return null;
  const figures = cmp.figureDrops.filter((f) => f.id === id);
  if (cmp.new.some((e) => e.id === id) || figures.length) return { tag: 'new', figures };
  if (cmp.known.some((e) => e.id === id)) return { tag: 'known', figures };
  if (cmp.improved.some((e) => e.id === id)) return { tag: 'improved', figures };
  return null;
}

export const percent = (x: number) => `${x > 0 ? '+' : ''}${Math.round(x * 100)} %`;

/** `readRatio 0.95 -> 0.7 (-26 %, tolerance 20 %)` */
export function describeFigure(f: FigureChange, tolerance: number): string {
  const iv = (i?: [number, number]) => (i ? ` [${i[0]}-${i[1]}]` : '');
  return `${f.figure} ${f.before}${iv(f.beforeInterval)} -> ${f.now}${iv(f.nowInterval)} (${percent(f.change)}, tolerance ${Math.round(tolerance * 100)} %${f.nowInterval ? ' beyond the intervals' : ''})`;
}

/** Gate a finished run on its baseline: results.baseline holds the comparison, summary.exitCode its verdict. */
export function applyBaseline(results: Results, base: Results, opts: { strict: boolean; tolerance: number; file: string }): BaselineComparison {
  const cmp = compareWithBaseline(results, base, opts);
  results.baseline = cmp;
  results.summary.exitCode = cmp.exitCode;
  return cmp;
}
