// Verdicts come from what a skip is (its kind: not-applicable, environment, platform), never from
// the words of its reason: the same --strict certification with every skip reason rewritten
// (FUSECERT_TEST_REWORD_SKIPS=1, harness/clause.ts) gives the same statuses and the same exit code.
import { describe, expect, test } from 'vitest';
import { fusecert, missing } from './util.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`skip reasons are words, skip kinds are data${why ? ` (skipped: ${why})` : ''}`, () => {
  test('a full --strict ptfs run and one with every skip reason reworded: same statuses, same exit code', async () => {
    const args = ['run', '--server', 'servers/ptfs/manifest.json', '--strict', '--seed', '7'];
    const [plain, reworded] = await Promise.all([fusecert(args), fusecert(args, { env: { FUSECERT_TEST_REWORD_SKIPS: '1' } })]);
    for (const r of [plain, reworded]) {
      expect(r.leftovers).toEqual([]);
      expect(r.results, r.stderr).not.toBeNull();
    }
    const skips = reworded.results!.clauses.filter((c) => c.status === 'skip');
    expect(skips.length, 'a full ptfs run has skips (the PRF clauses of its variants)').toBeGreaterThan(0);
    for (const s of skips) expect(s.reason).toMatch(/^reworded for a test: /);
    // PRF figures are timings: their status may differ between two runs, the skip kinds may not
    const statuses = (r: typeof plain) => Object.fromEntries(r.results!.clauses.map((c) => [c.id, c.status === 'fail' && c.family === 'PRF' ? 'fail-or-pass' : c.status === 'pass' && c.family === 'PRF' ? 'fail-or-pass' : `${c.status}/${c.skipKind ?? '-'}`]));
    expect(statuses(reworded)).toEqual(statuses(plain));
    const isStrictFailure = (r: typeof plain) => r.results!.clauses.filter((c) => c.status === 'skip' && !c.notApplicable).map((c) => c.id);
    expect(isStrictFailure(reworded)).toEqual(isStrictFailure(plain));
    const prfFailed = (r: typeof plain) => r.results!.clauses.some((c) => c.family === 'PRF' && c.status === 'fail');
    if (prfFailed(plain) === prfFailed(reworded)) expect(reworded.exitCode).toBe(plain.exitCode);
  }, 300_000);
});
