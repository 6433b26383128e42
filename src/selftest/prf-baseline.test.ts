// Baseline gating on PRF figures, decided on their intervals (issue 24), on real runs: clean ptfs's
// PRF-002 against its own earlier run is no drop, a ptfs whose writes are slower on purpose
// (--defect slow-getxattr: 4 ms per write of 1 MiB, PRF-002 ~0.85 -> under 0.1) is one. A timing
// test: it runs in the `alone` project (vitest.config.ts), after the other files, as run.ts runs
// the PRF suite alone; beside another file's certifications (CI) the clean figure's interval
// once reached down to where the slow one was.
import { afterAll, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fusecert, ptfsManifest, missing, ROOT, type CliRun } from './util.ts';
import { loadDefects } from './defects.ts';
import { certifyDefect, timingDefect } from './matrix.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`PRF baseline gating on real runs${why ? ` (skipped: ${why})` : ''}`, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-prf-baseline-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const check = (name: string, r: CliRun) => {
    expect(r.leftovers, name).toEqual([]);
    expect(r.results?.errors, `${name}: ${r.stderr}`).toEqual([]);
    return r.results!;
  };
  // The tolerance is 0.2, not the default 0.1: what is shown is the mechanism, not the default's margin (README).
  test('PRF-002 on intervals: the clean build against itself has no figure drop, a build made slower on purpose has one', async () => {
    const cleanManifest = ptfsManifest('ptfs', []);
    const only = ['--only', 'PRF-002', '--seed', '15'];
    const first = await fusecert(['run', '--server', cleanManifest, ...only]);
    const base = check('prf clean', first);
    const fig = base.clauses.find((c) => c.id === 'PRF-002')!.evidence!;
    expect([typeof fig.writeRatio, typeof fig.writeRatioLow, typeof fig.writeRatioHigh, typeof fig.pairs]).toEqual(['number', 'number', 'number', 'number']);
    const prfFile = path.join(dir, 'prf.json');
    writeFileSync(prfFile, JSON.stringify(first.results));
    const gate = ['--baseline', prfFile, '--baseline-tolerance', '0.2'];
    const same = check('prf clean again', await fusecert(['run', '--server', cleanManifest, ...only, ...gate]));
    expect(same.baseline?.figureDrops, JSON.stringify([fig, same.clauses[0]?.evidence])).toEqual([]);
    const slow = await fusecert(['run', '--server', ptfsManifest('ptfs', ['--defect', 'slow-getxattr']), ...only, ...gate]);
    const res = check('prf slow', slow);
    const figures = JSON.stringify([fig, res.clauses[0]?.evidence, res.baseline]);
    expect(
      res.baseline?.figureDrops.map((f) => [f.id, f.figure]),
      figures,
    ).toEqual([['PRF-002', 'writeRatio']]);
    expect(slow.exitCode, slow.stderr).toBe(1);
    const drop = res.baseline!.figureDrops[0]!;
    expect(drop.nowInterval![1]).toBeLessThan(drop.beforeInterval![0] * 0.8);
    expect(slow.stdout).toMatch(
      /DROP PRF-002: writeRatio [\d.]+ \[[\d.]+-[\d.]+\] -> [\d.]+ \[[\d.]+-[\d.]+\] \(-\d+ %, tolerance 20 % beyond the intervals\)/,
    );
  }, 180_000);
});

// The mutation matrix's timing defects (the self-test runs the others in its pool, beside other
// files): each fails exactly its clauses and names the cause, measured with the machine to itself.
describe.skipIf(why)(`mutation matrix, timing defects${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const e of loadDefects(ROOT).filter(timingDefect))
    test(
      `${e.defect}: ${e.bug} -> ${e.fails.join(', ')}`,
      () => certifyDefect(e, (o) => console.log(`mutation matrix: ${o.defect} ${o.caught}/${o.expected} expected failures (${o.seconds} s)`)),
      300_000,
    );
});
