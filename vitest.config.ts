import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The long files first, so that the longest (the self-test, ~300 s) starts at once and the short
 * ones fill the other worker around it; measured seconds of each in a whole `npm test`, on this project's
 * 2-core machine. Without this, a fresh clone (no duration cache) started files in an order where the
 * self-test began late and the run ended on it alone.
 */
const WEIGHT: [string, number][] = [
  ['src/selftest/selftest.test.ts', 279],
  ['src/selftest/uml.test.ts', 75],
  ['src/selftest/concurrent.test.ts', 64],
  ['src/selftest/killed.test.ts', 59],
  ['src/cli/run.test.ts', 57],
  ['src/selftest/pack.test.ts', 32],
  ['src/selftest/baseline.test.ts', 30],
  ['src/selftest/repro.test.ts', 19],
  ['src/selftest/skips.test.ts', 14],
  ['src/report/compare.browser.test.ts', 11],
  ['src/selftest/dead-run.test.ts', 8],
];
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const w = (f: TestSpecification) => WEIGHT.find(([p]) => f.moduleId.endsWith(p))?.[1] ?? 0;
    return [...base].sort((a, b) => w(b) - w(a));
  }
}

// fusecert's own tests: unit tests beside their modules, integration tests on real mounts, and the
// self-test that certifies the reference server and its defects. The clause suites in suites/ are
// not run here directly: they run under `fusecert run`, which the self-test drives.
const ALONE = ['src/selftest/prf-baseline.test.ts'];
export default defineConfig({
  test: {
    pool: 'forks',
    // two files at a time: the self-test's runs wait (deadlines, stops) much of the time, and the
    // other files fill it (vitest's default on 2 cores is one)
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { UV_THREADPOOL_SIZE: '32' },
    maxConcurrency: 3,
    sequence: { sequencer: LongestFirst },
    projects: [
      { extends: true, test: { name: 'fusecert', include: ['src/**/*.test.ts'], exclude: ALONE } },
      // files that need the machine to themselves (no other fusecert run may start meanwhile): after the rest
      // and one at a time (a group's files run in parallel otherwise: the dead run's sweep and PRF's figures met there)
      { extends: true, test: { name: 'alone', include: ALONE, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
