// Verdicts come from what a skip is (its kind: not-applicable, environment, platform), never from
// the words of its reason: the same --strict certification with every skip reason rewritten
// (FUSECERT_TEST_REWORD_SKIPS=1, harness/clause.ts) gives the same statuses and the same exit code.
import { describe, expect, test } from 'vitest';
import { fusecert, missing } from './util.ts';
import { REWORD_SKIPS_ENV } from '../runenv/index.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`skip reasons are words, skip kinds are data${why ? ` (skipped: ${why})` : ''}`, () => {
  // ptfs without passthrough skips every passthrough clause of these families as not applicable
  // (and no timing clause makes the --strict exit code vary between two runs)
  test('a --strict run with dozens of skips and the same run with every skip reason reworded: same statuses, kinds and exit code', async () => {
    const args = ['run', '--server', 'servers/ptfs/manifest.json@no-passthrough', '--family', 'NEG,BKG,IOM,LIF', '--strict', '--seed', '7'];
    const [plain, reworded] = await Promise.all([fusecert(args), fusecert(args, { env: { ...REWORD_SKIPS_ENV } })]);
    for (const r of [plain, reworded]) {
      expect(r.leftovers).toEqual([]);
      expect(r.results, r.stderr).not.toBeNull();
    }
    const skips = reworded.results!.clauses.filter((c) => c.status === 'skip');
    expect(skips.length, 'the passthrough clauses skip on a server without passthrough').toBeGreaterThan(20);
    for (const s of skips) expect(s.reason).toMatch(/^reworded for a test: /);
    const statuses = (r: typeof plain) => Object.fromEntries(r.results!.clauses.map((c) => [c.id, `${c.status}/${c.skipKind ?? '-'}`]));
    expect(statuses(reworded)).toEqual(statuses(plain));
    expect(reworded.exitCode).toBe(plain.exitCode);
    expect(plain.exitCode, 'every skip here is not-applicable: --strict passes').toBe(0);
  }, 300_000);
});
