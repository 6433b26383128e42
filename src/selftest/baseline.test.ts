// Baseline gating on real runs (issue 15): clean ptfs and a ptfs defect certified on the defect's
// families give two baselines; the defect against the clean baseline fails on exactly the defect's
// clauses as new, against its own results it passes with them known, the clean server against the
// defect's results reports them improved, and `fusecert expect --write` turns the defect's failures
// into expectations the next run honours.
import { clauseById, parseKey } from '../catalogue/index.ts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { fusecert, ptfsManifest, missing, ROOT, type CliRun } from './util.ts';
import type { Results } from '../report/index.ts';

interface DefectEntry {
  defect: string;
  args: string[];
  families: string[];
  fails: string[];
}
const DEFECT = 'double-close';
const entry = (JSON.parse(readFileSync(path.join(ROOT, 'fixtures/defects.json'), 'utf8')).defects as DefectEntry[]).find((e) => e.defect === DEFECT)!;
const failsAll = [...entry.fails].sort();
// the failures that gate a run without --strict: a SHOULD failure of a defect fails but neither
// gates nor is adopted (this defect has none; the filter keeps the test true for one that has)
const fails = failsAll.filter((id) => clauseById(id).level === 'MUST');
const sortedIds = (xs: { id: string }[] | undefined) => (xs ?? []).map((x) => parseKey(x.id).id).sort();

/** JUnit testcases by clause id: the baseline property and the failure message. */
function junitCases(xml: string): Record<string, { baseline?: string; failure?: string }> {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml);
  // biome-ignore lint/suspicious/noExplicitAny: parsed JUnit XML, read field by field below
  const cases = [doc.testsuites.testsuite].flat().flatMap((s: { testcase: unknown }) => [s.testcase].flat()) as Record<string, any>[];
  return Object.fromEntries(
    cases.map((c) => [
      String(c.name).split(' ')[0],
      { baseline: [c.properties?.property].flat().find((p: { name?: string } | undefined) => p?.name === 'baseline')?.value, failure: c.failure?.message },
    ]),
  );
}

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`baseline gating on real runs${why ? ` (skipped: ${why})` : ''}`, () => {
  // the clauses the defect fails and two it passes (not new, not known, not improved): the
  // mutation matrix runs the defect on its whole family
  const args = ['--only', [...failsAll, 'BKG-001', 'BKG-005'].join(','), '--seed', '15', '--deadline', '20000'];
  // Both servers are named ptfs: a baseline is an earlier run of the same server.
  let cleanManifest: string;
  let defectManifest: string;
  let dir: string;
  let cleanFile: string;
  let defectDir: string;
  let defectFile: string;
  const durations: string[] = [];
  const check = (name: string, r: CliRun) => {
    durations.push(`${name} ${(r.durationMs / 1000).toFixed(1)} s`);
    expect(r.leftovers, name).toEqual([]);
    expect(r.results?.errors, `${name}: ${r.stderr}`).toEqual([]);
    return r.results!;
  };

  beforeAll(async () => {
    cleanManifest = ptfsManifest('ptfs', []);
    defectManifest = ptfsManifest('ptfs', entry.args);
    dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-baseline-'));
    const [clean, defect] = await Promise.all([fusecert(['run', '--server', cleanManifest, ...args]), fusecert(['run', '--server', defectManifest, ...args])]);
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(defect.exitCode, defect.stderr).toBe(1);
    expect(sortedIds(check('clean', clean).clauses.filter((c) => c.status === 'fail' || c.status === 'hung'))).toEqual([]);
    expect(sortedIds(check(DEFECT, defect).clauses.filter((c) => c.status === 'fail' || c.status === 'hung'))).toEqual(failsAll);
    cleanFile = path.join(dir, 'clean.json');
    writeFileSync(cleanFile, JSON.stringify(clean.results));
    // The defect's results as an earlier run's --out: DIR/NAME/results.json.
    defectDir = path.join(dir, 'previous');
    mkdirSync(path.join(defectDir, 'ptfs'), { recursive: true });
    defectFile = path.join(defectDir, 'ptfs', 'results.json');
    writeFileSync(defectFile, JSON.stringify(defect.results));
  }, 240_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (durations.length) console.log(`baseline self-test runs: ${durations.join(', ')}`);
  });

  describe.concurrent('runs', () => {
    test(`${DEFECT} against the clean baseline: exit 1, exactly ${fails.join(', ')} new, in JUnit and on the console`, async () => {
      const r = await fusecert(['run', '--server', defectManifest, ...args, '--baseline', cleanFile]);
      const res = check('new', r);
      expect(r.exitCode, r.stderr).toBe(1);
      expect(sortedIds(res.baseline?.new)).toEqual(fails);
      expect(res.baseline?.new.every((e) => e.before === 'pass')).toBe(true);
      expect([res.baseline?.known, res.baseline?.improved, res.baseline?.figureDrops]).toEqual([[], [], []]);
      expect(res.summary.exitCode).toBe(1);
      const cases = junitCases(r.junit!);
      for (const id of fails) {
        expect(cases[id]?.baseline, id).toBe('new');
        expect(cases[id]?.failure, id).toMatch(/^NEW: \[MUST\] /);
      }
      expect(
        Object.entries(cases)
          .filter(([, c]) => c.baseline)
          .map(([id]) => id)
          .sort(),
      ).toEqual(fails);
      expect(r.stdout).toContain('new failures (not failing in the baseline):');
      expect(r.stdout).not.toContain('known failures');
      expect(r.stdout).toMatch(
        new RegExp(`baseline .*clean\\.json \\(.*\\): ${fails.length} new, 0 known, 0 improved, 0 figure drop\\(s\\) -> WORSE THAN THE BASELINE \\(exit 1\\)`),
      );
    }, 180_000);

    test(`${DEFECT} against its own results (an earlier --out directory): exit 0, the same clauses known, not new`, async () => {
      const r = await fusecert(['run', '--server', defectManifest, ...args, '--baseline', defectDir]);
      const res = check('known', r);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(sortedIds(res.baseline?.known)).toEqual(fails);
      expect([res.baseline?.new, res.baseline?.improved]).toEqual([[], []]);
      expect(res.summary.mustFailures).toBe(fails.length); // still failing: the gate changed, not the verdict
      const cases = junitCases(r.junit!);
      for (const id of fails) {
        expect(cases[id]?.baseline, id).toBe('known');
        expect(cases[id]?.failure, id).toMatch(/^KNOWN: \[MUST\] /);
      }
      expect(r.stdout).toContain(`known failures (failing in the baseline too): ${fails.length}`);
      expect(r.stdout).not.toContain('new failures');
      expect(r.stdout).toMatch(/-> NOT CERTIFIED\n/);
      expect(r.stdout).toMatch(new RegExp(`: 0 new, ${fails.length} known, 0 improved, 0 figure drop\\(s\\) -> NOTHING WORSE THAN THE BASELINE \\(exit 0\\)`));
    }, 180_000);

    test(`clean ptfs against ${DEFECT}'s results: exit 0, the defect's clauses improved`, async () => {
      const r = await fusecert(['run', '--server', cleanManifest, ...args, '--baseline', defectFile]);
      const res = check('improved', r);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(sortedIds(res.baseline?.improved)).toEqual(fails);
      expect([res.baseline?.new, res.baseline?.known]).toEqual([[], []]);
      expect(junitCases(r.junit!)[fails[0]!]).toEqual({ baseline: 'improved', failure: undefined });
      expect(r.stdout).toContain('improved (failing in the baseline, passing now):');
    }, 180_000);

    test(`fusecert expect --write adopts ${DEFECT} as it is: the next run certifies it with the failures expected`, async () => {
      const manifest = path.join(dir, 'adopted.json');
      writeFileSync(manifest, readFileSync(defectManifest));
      const e = await fusecert(['expect', '--from', defectFile, '--write', manifest]);
      expect([e.exitCode, e.stderr]).toEqual([0, '']);
      expect(e.stdout).toMatch(new RegExp(`adopted\\.json: ${fails.length} expect entries added; replace each TODO`));
      const before = JSON.parse(readFileSync(defectManifest, 'utf8')).expect as unknown[]; // ptfs's own entries, kept
      const written = JSON.parse(readFileSync(manifest, 'utf8')).expect as { clause: string; status: string; reason: string }[];
      expect(written.slice(0, before.length)).toEqual(before);
      const added = written.slice(before.length);
      expect(added.map((x) => x.clause).sort()).toEqual(fails);
      expect(added.every((x) => x.status === 'fail' && x.reason.startsWith('TODO: '))).toBe(true);
      const r = await fusecert(['run', '--server', manifest, ...args]);
      const res = check('adopted', r);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(sortedIds(res.clauses.filter((c) => c.status === 'xfail'))).toEqual(fails);
    }, 180_000);
  });
});

// The results type is what the CLI writes: a compile-time check that the test reads real fields.
export type _Baseline = NonNullable<Results['baseline']>;
