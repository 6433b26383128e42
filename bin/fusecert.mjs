#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so there is no separate JS build to go stale.
import { register } from 'tsx/esm/api';
// A SIGINT or SIGTERM while the CLI loads (seconds on a cold tsx cache or a loaded machine) would
// kill it with no handler yet: it is kept here and src/cli/main.ts acts on it once its own
// handlers are in place (nothing is mounted before then).
const early = [];
const keep = (sig) => early.push(sig);
process.on('SIGINT', keep);
process.on('SIGTERM', keep);
globalThis.fusecertEarlySignals = { early, keep };
// vitest's module graph is large: loaded through tsx's hooks it takes ~1.8 s, before them ~0.4 s.
// Loaded here first, the runner's own import of it is a cache hit.
if (process.argv[2] === 'run') await import('vitest/node');
register();
await import('../src/cli/main.ts');
