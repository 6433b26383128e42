#!/usr/bin/env node
// The guardian of one run (src/mount/guardian.ts): started detached by the runner, it sweeps the
// run when the runner dies without saying goodbye (SIGKILL, a crash).
import { fileURLToPath } from 'node:url';
import { bundled } from './bundle.mjs';

const entry = fileURLToPath(new URL('../src/mount/guardian.ts', import.meta.url));
const js = await bundled(entry);
if (!js) (await import('tsx/esm/api')).register();
const { guardianMain } = await import(js ?? entry);
guardianMain();
