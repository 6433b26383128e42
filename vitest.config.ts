import { defineConfig } from 'vitest/config';

// fusecert's own tests: unit tests beside their modules, integration tests on real mounts, and the
// self-test that certifies the reference server and its defects. The clause suites in suites/ are
// not run here directly: they run under `fusecert run`, which the self-test drives.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { UV_THREADPOOL_SIZE: '32' },
    maxConcurrency: 3,
  },
});
