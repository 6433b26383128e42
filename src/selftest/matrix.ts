// One defect of the mutation matrix certified and judged: the run fails exactly the clauses
// fixtures/defects.json lists (or ends in the environment error it names), leaves nothing, and
// every failure names the defect's cause. The self-test runs most defects in its pool; a defect
// of the timing family (PRF) runs in prf-baseline.test.ts, which has the machine to itself.
import { expect } from 'vitest';
import { keyOf } from '../catalogue/index.ts';
import { causeOf, runOptions, type DefectEntry } from './defects.ts';
import { fusecert, ptfsClaims, ptfsManifest } from './util.ts';
import type { Results } from '../report/index.ts';

export interface DefectOutcome {
  defect: string;
  expected: number;
  caught: number;
  unexpected: string[];
  seconds: number;
  /** failing clauses, and how many of them name the cause (null for an environment error) */
  diagnosis: { failing: number; named: number } | null;
}

/** A defect whose run measures time: beside other runs its figures measure them, not the server. */
export const timingDefect = (e: DefectEntry): boolean => e.families.includes('PRF');

const failing = (r: Results) => r.clauses.filter((c) => c.status === 'fail' || c.status === 'hung');

/**
 * Defects that share families and run options and whose runs do not mostly wait are certified in
 * one `fusecert run` of several servers: one CLI start and one check of the platform facts instead
 * of one per defect (a run's fixed cost, ~1.2 s of CPU, was a quarter of the self-test's). Each
 * defect is still its own server, with its own state dir, guardian, report and judgement.
 */
export function groupDefects(es: DefectEntry[]): DefectEntry[][] {
  const groups = new Map<string, DefectEntry[]>();
  for (const e of es) {
    const alone = e.environmentError !== undefined || e.deadlineMs !== undefined || e.families.includes('LIF');
    const key = alone ? `alone ${e.defect}` : `${e.families.join(',')} ${runOptions(e).join(' ')}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return [...groups.values()];
}

const manifestName = (e: DefectEntry) => `ptfs-${e.defect.replace(/\s+/g, '-').toLowerCase()}`;

/** Certify ptfs with each defect of a group (groupDefects) on their families and assert the matrix's expectations; `done` gets each one's figures first. */
export async function certifyDefects(es: DefectEntry[], done: (o: DefectOutcome) => void): Promise<void> {
  const e0 = es[0];
  const servers = es.flatMap((e) => ['--server', ptfsManifest(manifestName(e), e.args, e.claims ? { claims: { ...ptfsClaims(), ...e.claims } } : {})]);
  // one suite worker: the self-test's pool already runs three runs on two cores, and each further
  // worker of a run with several families costs its start-up (~1 s of CPU) and buys no time back
  const r = await fusecert(['run', ...servers, '--family', e0.families.join(','), ...runOptions(e0), '--jobs', '1']);
  if (e0.environmentError) {
    const seconds = Math.round(r.durationMs / 1000);
    done({ defect: e0.defect, expected: 1, caught: new RegExp(e0.environmentError).test(r.ownStderr) ? 1 : 0, unexpected: [], seconds, diagnosis: null });
    expect(r.exitCode, r.stderr).toBe(2);
    // one line of its own (another test file's dead run may be swept by this run meanwhile)
    expect(r.ownStderr.trim().split('\n'), `one error line, not:\n${r.stderr}`).toHaveLength(1);
    expect(r.ownStderr).toMatch(new RegExp(e0.environmentError));
    expect(r.leftovers).toEqual([]);
    return;
  }
  const results = es.map((e) => (es.length > 1 ? r.byServer[manifestName(e)] : r.results));
  for (const [i, e] of es.entries()) expect(results[i], `${e.defect}: no results.json (${r.stderr})`).toBeTruthy();
  // every defect's figures first (the matrix's summary line), then each one's judgement
  const checks = es.map((e, i) => judge(e, results[i]!, done));
  for (const check of checks) check();
  // every defect fails its run: the run's code is 1 whichever failed
  expect(r.exitCode, r.stderr).toBe(1);
  expect(r.leftovers).toEqual([]);
}

/** One defect's results: its figures to `done` now, and the judgement (exactly its expected failures, each naming the cause) to run. */
function judge(e: DefectEntry, res: Results, done: (o: DefectOutcome) => void): () => void {
  const bad = failing(res);
  const got = new Set(bad.map((c) => keyOf(c).id));
  const unexpected = [...got].filter((id) => !e.fails.includes(id));
  // every failure names what the server did (its own pattern, else the defect's `*`)
  const unnamed = bad.filter((c) => {
    const pattern = causeOf(e, keyOf(c).id);
    return pattern === undefined || !new RegExp(pattern).test(c.reason);
  });
  done({
    defect: e.defect,
    expected: e.fails.length,
    caught: e.fails.filter((id) => got.has(id)).length,
    unexpected,
    seconds: Math.round(res.durationMs / 1000),
    diagnosis: { failing: bad.length, named: bad.length - unnamed.length },
  });
  return () => {
    // a run that did not fail says what became of the clauses it should have failed
    const expected = res.clauses.filter((c) => e.fails.includes(keyOf(c).id));
    expect(res.summary.exitCode, `${e.defect}: ${expected.map((c) => `\n${c.id}: ${c.status} ${c.reason}`).join('')}`).toBe(1);
    expect(res.errors, e.defect).toEqual([]);
    // each expected failure that did not happen, with what the clause did instead
    expect(
      e.fails
        .filter((id) => !got.has(id))
        .map((id) => {
          const seen = expected.filter((c) => keyOf(c).id === id);
          return seen.length ? `${id}: ${seen.map((c) => `${c.status} ${c.reason}`.trim()).join('; ')}` : `${id}: not run`;
        }),
      `${e.defect}: expected failures that did not happen`,
    ).toEqual([]);
    expect(unexpected, `${e.defect}: clauses outside the expected set failed (shared state in the harness or ptfs?)`).toEqual([]);
    expect(
      unnamed.map((c) => `${c.id} must name the cause (/${causeOf(e, keyOf(c).id)}/); it said: ${c.reason}`),
      `${e.defect}: failures that do not name the cause`,
    ).toEqual([]);
  };
}

/** Certify ptfs with one defect (certifyDefects with a group of one). */
export const certifyDefect = (e: DefectEntry, done: (o: DefectOutcome) => void): Promise<void> => certifyDefects([e], done);
