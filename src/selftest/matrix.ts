// One defect of the mutation matrix certified and judged: the run fails exactly the clauses
// fixtures/defects.json lists (or ends in the environment error it names), leaves nothing, and
// every failure names the defect's cause. The self-test runs most defects in its pool; a defect
// of the timing family (PRF) runs in prf-baseline.test.ts, which has the machine to itself.
import { expect } from 'vitest';
import { keyOf } from '../catalogue/index.ts';
import { causeOf, runOptions, type DefectEntry } from './defects.ts';
import { fusecert, ptfsManifest, type CliRun } from './util.ts';

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

const failing = (r: CliRun) => (r.results?.clauses ?? []).filter((c) => c.status === 'fail' || c.status === 'hung');

/** Certify ptfs with the defect on its families and assert the matrix's expectations; `done` gets the figures first. */
export async function certifyDefect(e: DefectEntry, done: (o: DefectOutcome) => void): Promise<void> {
  const m = ptfsManifest(`ptfs-${e.defect.replace(/\s+/g, '-').toLowerCase()}`, e.args);
  // one suite worker: the self-test's pool already runs three runs on two cores, and each further
  // worker of a run with several families costs its start-up (~1 s of CPU) and buys no time back
  const r = await fusecert(['run', '--server', m, '--family', e.families.join(','), ...runOptions(e), '--jobs', '1']);
  const seconds = Math.round(r.durationMs / 1000);
  if (e.environmentError) {
    done({ defect: e.defect, expected: 1, caught: new RegExp(e.environmentError).test(r.stderr) ? 1 : 0, unexpected: [], seconds, diagnosis: null });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n'), 'one error line').toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(e.environmentError));
    expect(r.leftovers).toEqual([]);
    return;
  }
  const bad = failing(r);
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
    seconds,
    diagnosis: { failing: bad.length, named: bad.length - unnamed.length },
  });
  // a run that did not fail says what became of the clauses it should have failed
  const expected = (r.results?.clauses ?? []).filter((c) => e.fails.includes(keyOf(c).id));
  expect(r.exitCode, `${r.stderr}${expected.map((c) => `\n${c.id}: ${c.status} ${c.reason}`).join('')}`).toBe(1);
  expect(r.leftovers).toEqual([]);
  expect(r.results!.errors).toEqual([]);
  expect(
    e.fails.filter((id) => !got.has(id)),
    'expected failures that did not happen',
  ).toEqual([]);
  expect(unexpected, 'clauses outside the expected set failed (shared state in the harness or ptfs?)').toEqual([]);
  expect(
    unnamed.map((c) => `${c.id} must name the cause (/${causeOf(e, keyOf(c).id)}/); it said: ${c.reason}`),
    'failures that do not name the cause',
  ).toEqual([]);
}
