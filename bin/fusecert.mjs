#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so there is no separate JS build to go stale.
import { register } from 'tsx/esm/api';
// vitest's module graph is large: loaded through tsx's hooks it takes ~1.8 s, before them ~0.4 s.
// Loaded here first, the runner's own import of it is a cache hit.
if (process.argv[2] === 'run') await import('vitest/node');
register();
await import('../src/cli/main.ts');
