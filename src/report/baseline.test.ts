// Baseline gating on hand-made results: what counts as new, known, improved, and figure drops.
import { describe, expect, test } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { applyBaseline, compareWithBaseline, DEFAULT_TOLERANCE, describeFigure } from './baseline.ts';
import { medianInterval } from '../harness/stats.ts';
import { applyExpectations, summarise } from './results.ts';
import { clauseResult as c, results } from './compare.testdata.ts';
import { writeJUnit } from './junit.ts';
import { summaryTable } from './console.ts';

const opts = { strict: false, tolerance: 0.15, file: 'prev/results.json' };
const ids = (xs: { id: string }[]) => xs.map((x) => x.id);
/** A run as runServer() finishes it: summary from the clauses. */
const run = (clauses: ReturnType<typeof c>[], errors: string[] = []) => {
  const r = results('ptfs', clauses);
  r.errors = errors;
  r.summary = summarise(clauses, false, errors);
  return r;
};

describe('compareWithBaseline', () => {
  test('pass -> fail is new and gates; fail -> fail is known and does not', () => {
    const base = run([c('RW-001', 'pass'), c('RW-002', 'fail'), c('RW-003', 'pass')]);
    const now = run([c('RW-001', 'fail'), c('RW-002', 'fail'), c('RW-003', 'pass')]);
    const cmp = compareWithBaseline(now, base, opts);
    expect(cmp.new).toEqual([{ id: 'RW-001', now: 'fail', before: 'pass', reason: 'reason for RW-001' }]);
    expect(ids(cmp.known)).toEqual(['RW-002']);
    expect(cmp.improved).toEqual([]);
    expect(cmp.exitCode).toBe(1);
    // The same run against its own results: everything failing is known, nothing is worse.
    const self = compareWithBaseline(now, now, opts);
    expect([ids(self.new), ids(self.known), self.exitCode]).toEqual([[], ['RW-001', 'RW-002'], 0]);
  });

  test('a hang counts as a failure on either side', () => {
    const cmp = compareWithBaseline(run([c('NEG-001', 'hung'), c('NEG-002', 'fail')]), run([c('NEG-001', 'pass'), c('NEG-002', 'hung')]), opts);
    expect([ids(cmp.new), ids(cmp.known)]).toEqual([['NEG-001'], ['NEG-002']]);
  });

  test("fail -> pass is improved, with the baseline's reason; it never gates", () => {
    const cmp = compareWithBaseline(
      run([c('BKG-003', 'pass'), c('BKG-008', 'pass')]),
      run([c('BKG-003', 'fail', { reason: 'still holds 2 backing ids' }), c('BKG-008', 'pass')]),
      opts,
    );
    expect(cmp.improved).toEqual([{ id: 'BKG-003', now: 'pass', before: 'fail', reason: 'still holds 2 backing ids' }]);
    expect(cmp.exitCode).toBe(0);
  });

  test('xfail and not-applicable skips in the baseline are not failures: failing now is new', () => {
    const base = run([
      c('ATT-006', 'xfail'),
      c('PRF-001', 'skip', { notApplicable: true, reason: 'server does not claim passthrough' }),
      c('RW-004', 'skip', { reason: 'needs tracefs' }),
    ]);
    const now = run([c('ATT-006', 'fail'), c('PRF-001', 'fail'), c('RW-004', 'hung')]);
    const cmp = compareWithBaseline(now, base, opts);
    expect(cmp.new.map((e) => [e.id, e.before])).toEqual([
      ['ATT-006', 'xfail'],
      ['PRF-001', 'skip'],
      ['RW-004', 'skip'],
    ]);
    expect(cmp.exitCode).toBe(1);
  });

  test('SHOULD failures and expected failures do not fail the run, so they are neither new nor known; --strict makes them count', () => {
    const base = run([c('PRF-001', 'pass', { level: 'SHOULD' }), c('RW-002', 'pass')]);
    const now = run([c('PRF-001', 'fail', { level: 'SHOULD' }), c('RW-002', 'xfail')]);
    expect(compareWithBaseline(now, base, opts)).toMatchObject({ new: [], known: [], exitCode: 0 });
    expect(ids(compareWithBaseline(now, base, { ...opts, strict: true }).new)).toEqual(['PRF-001']);
  });

  test('an expectation that expired since the baseline is new; one expired in both is known', () => {
    const exp = [{ clause: 'ATT-006', status: 'fail' as const, reason: 'mtime after msync is cached', expires: '2026-01-01' }];
    const base = run(applyExpectations([c('ATT-006', 'fail'), c('ATT-007', 'fail')], exp, new Date('2025-12-01')));
    const now = run(applyExpectations([c('ATT-006', 'fail'), c('ATT-007', 'fail')], exp, new Date('2026-02-01')));
    const cmp = compareWithBaseline(now, base, opts);
    expect([ids(cmp.new), ids(cmp.known)]).toEqual([['ATT-006'], ['ATT-007']]);
    expect(ids(compareWithBaseline(now, now, opts).known)).toEqual(['ATT-006', 'ATT-007']);
  });

  test('a clause missing from the baseline has no history: its failure is new, its pass is nothing', () => {
    const cmp = compareWithBaseline(run([c('RW-001', 'pass'), c('RW-013', 'fail'), c('RW-012', 'pass')]), run([c('RW-001', 'pass')]), opts);
    expect(cmp.new).toEqual([{ id: 'RW-013', now: 'fail', before: 'absent', reason: 'reason for RW-013' }]);
    expect(cmp.improved).toEqual([]);
    expect(cmp.notRun).toEqual([]);
  });

  test('a clause missing from this run is reported as not run, never as improved or worse', () => {
    const cmp = compareWithBaseline(run([c('RW-001', 'pass')]), run([c('RW-001', 'pass'), c('RW-002', 'fail'), c('ATT-001', 'pass')]), opts);
    expect(cmp).toMatchObject({ new: [], known: [], improved: [], notRun: ['RW-002', 'ATT-001'], exitCode: 0 });
  });

  test('variants and parameters are separate clauses, matched by the full id', () => {
    const base = run([c('RW-002', 'pass'), c('RW-002@no-passthrough', 'fail'), c('IOM-001[O_RDONLY+O_DIRECT]', 'pass')]);
    const now = run([c('RW-002', 'fail'), c('RW-002@no-passthrough', 'fail'), c('IOM-001[O_RDONLY+O_DIRECT]', 'fail')]);
    const cmp = compareWithBaseline(now, base, opts);
    expect([ids(cmp.new), ids(cmp.known)]).toEqual([['RW-002', 'IOM-001[O_RDONLY+O_DIRECT]'], ['RW-002@no-passthrough']]);
  });

  test('a figure drop within the tolerance is nothing; beyond it is worse even on a passing clause', () => {
    const prf = (read: number, write: number) => [
      c('PRF-001', 'pass', { level: 'SHOULD', evidence: { readRatio: read, mountMBs: 100 } }),
      c('PRF-002', 'pass', { level: 'SHOULD', evidence: { writeRatio: write } }),
    ];
    const base = run(prf(1.0, 0.8));
    const within = compareWithBaseline(run(prf(0.86, 0.69)), base, opts); // -14 %, -13.75 %
    expect(within).toMatchObject({ figureDrops: [], figureGains: [], exitCode: 0 });
    const beyond = compareWithBaseline(run(prf(0.84, 0.8)), base, opts); // -16 %
    expect(beyond.figureDrops).toEqual([{ id: 'PRF-001', figure: 'readRatio', before: 1, now: 0.84, change: -0.16 }]);
    expect(beyond.exitCode).toBe(1);
    // The same drop under a wider tolerance; the default (on intervals) is 10 %.
    expect(compareWithBaseline(run(prf(0.84, 0.8)), base, { ...opts, tolerance: 0.2 }).exitCode).toBe(0);
    expect(DEFAULT_TOLERANCE).toBe(0.1);
    const up = compareWithBaseline(run(prf(1.0, 1.0)), base, opts);
    expect([up.figureDrops, up.figureGains.map((f) => [f.id, f.figure, f.change]), up.exitCode]).toEqual([[], [['PRF-002', 'writeRatio', 0.25]], 0]);
  });

  test('with intervals a drop is decided on them: overlapping intervals are noise, one below the other by more than the tolerance is a drop; a suspect figure is not compared', () => {
    const prf = (m: number, lo: number, hi: number, extra: Record<string, unknown> = {}) => [
      c('PRF-001', 'pass', { level: 'SHOULD', evidence: { readRatio: m, readRatioLow: lo, readRatioHigh: hi, ...extra } }),
    ];
    const base = run(prf(1.0, 0.97, 1.03));
    // the median dropped by 20 %, but the new interval reaches the old one: no drop
    expect(compareWithBaseline(run(prf(0.8, 0.6, 0.96)), base, opts).figureDrops).toEqual([]);
    // below the old interval, but not by the tolerance (0.97 * 0.85 = 0.8245)
    expect(compareWithBaseline(run(prf(0.85, 0.83, 0.87)), base, opts).figureDrops).toEqual([]);
    const drop = compareWithBaseline(run(prf(0.8, 0.78, 0.82)), base, opts);
    expect(drop.figureDrops).toEqual([
      { id: 'PRF-001', figure: 'readRatio', before: 1, now: 0.8, change: -0.2, beforeInterval: [0.97, 1.03], nowInterval: [0.78, 0.82] },
    ]);
    expect(describeFigure(drop.figureDrops[0]!, 0.15)).toBe('readRatio 1 [0.97-1.03] -> 0.8 [0.78-0.82] (-20 %, tolerance 15 % beyond the intervals)');
    // a gain beyond the old interval and the tolerance
    expect(compareWithBaseline(run(prf(1.25, 1.2, 1.3)), base, opts).figureGains.map((f) => f.change)).toEqual([0.25]);
    // a figure flagged as a measurement problem by either run is left out
    expect(compareWithBaseline(run(prf(0.5, 0.49, 0.51, { readRatioSuspect: true })), base, opts).figureDrops).toEqual([]);
    expect(compareWithBaseline(run(prf(0.5, 0.49, 0.51)), run(prf(1.3, 1.2, 1.4, { readRatioSuspect: true })), opts).figureDrops).toEqual([]);
  });

  test('medianInterval: the median and the k-th order statistics, the range for few values', () => {
    expect(medianInterval([3, 1, 2])).toEqual({ median: 2, low: 1, high: 3 });
    expect(medianInterval([1, 2, 3, 4, 5, 6])).toEqual({ median: 3.5, low: 1, high: 6 });
    // n = 31: k = floor((31 - 1.96 * 5.57) / 2) = 10
    const xs = Array.from({ length: 31 }, (_, i) => i + 1);
    expect(medianInterval(xs)).toEqual({ median: 16, low: 10, high: 22 });
    expect(() => medianInterval([])).toThrow(/no values/);
  });

  test('figures are compared only where both runs have a number: a skip that carries figures counts, a missing one does not', () => {
    const base = run([
      c('PRF-001', 'skip', { level: 'SHOULD', notApplicable: true, evidence: { readRatio: 0.5 } }),
      c('PRF-002', 'pass', { level: 'SHOULD', evidence: { writeRatio: 0.9 } }),
    ]);
    const now = run([
      c('PRF-001', 'skip', { level: 'SHOULD', notApplicable: true, evidence: { readRatio: 0.3 } }),
      c('PRF-002', 'hung', { level: 'SHOULD', evidence: {} }),
    ]);
    expect(compareWithBaseline(now, base, opts).figureDrops.map((f) => f.id)).toEqual(['PRF-001']);
  });

  test('an error of the run outside any clause always gates: the run is incomplete', () => {
    const same = [c('RW-001', 'pass')];
    expect(compareWithBaseline(run(same, ['suites/readwrite.test.ts: the suite did not run']), run(same), opts)).toMatchObject({ errors: 1, exitCode: 1 });
  });
});

describe('what a gated run writes', () => {
  const base = run([c('BKG-003', 'pass'), c('BKG-008', 'fail'), c('BKG-009', 'fail'), c('PRF-001', 'pass', { level: 'SHOULD', evidence: { readRatio: 1 } })]);
  const now = () =>
    run([
      c('BKG-003', 'fail', { reason: 'the server still holds 1 backing id', replay: 'fusecert run --only BKG-003' }),
      c('BKG-008', 'fail', { reason: 'ledger: 3 opens, 0 closes' }),
      c('BKG-009', 'pass'),
      c('PRF-001', 'pass', { level: 'SHOULD', evidence: { readRatio: 0.5 } }),
    ]);

  test('applyBaseline: summary.exitCode becomes the verdict of the comparison, both ways', () => {
    const worse = now();
    expect(worse.summary.exitCode).toBe(1);
    applyBaseline(worse, base, opts);
    expect([worse.summary.exitCode, worse.baseline?.new.length]).toEqual([1, 1]);
    const known = now();
    applyBaseline(known, now(), opts);
    expect([known.summary.exitCode, known.summary.mustFailures, known.baseline?.known.length]).toEqual([0, 2, 2]);
  });

  test('JUnit: property baseline=new|known|improved, NEW:/KNOWN: failure messages, a figure drop fails its testcase', () => {
    const r = now();
    applyBaseline(r, base, opts);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-junit-'));
    try {
      writeJUnit([r], path.join(dir, 'j.xml'));
      const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(readFileSync(path.join(dir, 'j.xml'), 'utf8'));
      // biome-ignore lint/suspicious/noExplicitAny: parsed JUnit XML, read field by field below
      const cases = [xml.testsuites.testsuite].flat().flatMap((s: { testcase: unknown }) => [s.testcase].flat()) as Record<string, any>[];
      const byId = Object.fromEntries(cases.map((x) => [String(x.name).split(' ')[0], x]));
      const prop = (id: string) => [byId[id].properties?.property].flat().find((p: { name: string } | undefined) => p?.name === 'baseline')?.value;
      expect([prop('BKG-003'), prop('BKG-008'), prop('BKG-009'), prop('PRF-001')]).toEqual(['new', 'known', 'improved', 'new']);
      expect(byId['BKG-003'].failure.message).toBe('NEW: [MUST] the server still holds 1 backing id');
      expect(byId['BKG-008'].failure.message).toBe('KNOWN: [MUST] ledger: 3 opens, 0 closes');
      expect(byId['BKG-009'].failure).toBeUndefined();
      expect(byId['PRF-001'].failure.message).toBe('NEW: [SHOULD] readRatio 1 -> 0.5 (-50 %, tolerance 15 %) since the baseline');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('console: new failures first with their replay, known ones counted apart, improvements listed, the verdict last', () => {
    const r = now();
    applyBaseline(r, base, opts);
    const t = summaryTable(r, false);
    const at = (s: string) => t.indexOf(s);
    expect(t).toContain(
      'new failures (not failing in the baseline):\n  FAIL [MUST] BKG-003: the server still holds 1 backing id (baseline: pass)\n      replay: fusecert run --only BKG-003\n  DROP PRF-001: readRatio 1 -> 0.5 (-50 %, tolerance 15 %)',
    );
    expect(t).toContain('known failures (failing in the baseline too): 1\n  FAIL [MUST] BKG-008: ledger: 3 opens, 0 closes');
    expect(t).toContain('improved (failing in the baseline, passing now):\n  BKG-009 (baseline: fail: reason for BKG-009)');
    expect(at('new failures')).toBeLessThan(at('known failures'));
    expect(t.trim().split('\n').at(-2)).toMatch(/-> NOT CERTIFIED$/);
    expect(t.trim().split('\n').at(-1)).toBe(
      'baseline prev/results.json (2026-05-01T10:00:00.000Z): 1 new, 1 known, 1 improved, 1 figure drop(s) -> WORSE THAN THE BASELINE (exit 1)',
    );
    const k = now();
    applyBaseline(k, now(), opts);
    const tk = summaryTable(k, false);
    expect(tk).not.toContain('new failures');
    expect(tk.trim().split('\n').at(-1)).toMatch(/: 0 new, 2 known, 0 improved, 0 figure drop\(s\) -> NOTHING WORSE THAN THE BASELINE \(exit 0\)$/);
  });
});
