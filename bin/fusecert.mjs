#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so there is no separate JS build to go stale.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
