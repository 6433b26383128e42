#!/usr/bin/env node
// The guardian of one run (src/mount/guardian.ts): started detached by the runner, it sweeps the
// run when the runner dies without saying goodbye (SIGKILL, a crash).
import { register } from 'tsx/esm/api';
register();
const { guardianMain } = await import('../src/mount/guardian.ts');
guardianMain();
