#!/usr/bin/env node
// The guardian of one run (src/mount/guardian.ts): started detached by the runner, it sweeps the
// run when the runner dies without saying goodbye (SIGKILL, a crash).
import { fileURLToPath } from 'node:url';
import { importEntry } from './bundle.mjs';

const { guardianMain } = await importEntry(fileURLToPath(new URL('../src/mount/guardian.ts', import.meta.url)));
guardianMain();
