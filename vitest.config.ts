import { defineConfig } from 'vitest/config';

// fusecert's own tests: unit tests beside their modules, integration tests on real mounts, and the
// self-test that certifies the reference server and its defects. The clause suites in suites/ are
// not run here directly: they run under `fusecert run`, which the self-test drives.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    pool: 'forks',
    // two files at a time: the self-test's runs wait (deadlines, stops) much of the time, and the
    // other files fill it (vitest's default on 2 cores is one)
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { UV_THREADPOOL_SIZE: '32' },
    maxConcurrency: 3,
  },
});
