import { defineConfig } from 'vitest/config';

// fusecert's own tests: unit tests beside their modules, integration tests on real mounts, and the
// self-test that certifies the reference server and its defects. The clause suites in suites/ are
// not run here directly: they run under `fusecert run`, which the self-test drives.
const ALONE = ['src/selftest/dead-run.test.ts'];
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
    projects: [
      { extends: true, test: { name: 'fusecert', include: ['src/**/*.test.ts'], exclude: ALONE } },
      // files that need the machine to themselves (no other fusecert run may start meanwhile): after the rest
      { extends: true, test: { name: 'alone', include: ALONE, sequence: { groupOrder: 1 } } },
    ],
  },
});
