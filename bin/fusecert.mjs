#!/usr/bin/env node
// The CLI is TypeScript: run as a bundle kept fresh from its sources (bundle.mjs), else through tsx.
import { fileURLToPath } from 'node:url';
import { importEntry } from './bundle.mjs';

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
await importEntry(fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)));
