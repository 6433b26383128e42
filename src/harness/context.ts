// The environment contract between `fusecert run` and a suite worker: one JSON file named by
// FUSECERT_CONTEXT. Everything a clause may rely on about the run is in here.
import { received } from '../runenv/index.ts';
import { parseKey, selects, type ClauseKey } from '../catalogue/index.ts';
import { readFileSync } from 'node:fs';
import type { ServerSpec } from '../manifest/index.ts';
import type { Platform } from '../platform/index.ts';

export interface RunContext {
  server: ServerSpec;
  /** The reference server's manifest, resolved: the platform clauses run it in probe modes. */
  reference: ServerSpec | null;
  platform: Platform;
  only: string[];
  strict: boolean;
  seed: number;
  fsxRuns: number;
  deadlineMs: number;
  outDir: string;
  /** Shell-quoted command that replays one clause: `{id}` is replaced. */
  replay: string;
}

let cached: RunContext | null = null;

export function runContext(): RunContext {
  if (cached) return cached;
  const f = received().contextFile;
  if (!f) throw new Error('suites run under `fusecert run` (FUSECERT_CONTEXT is not set): try `node bin/fusecert.mjs run --server servers/ptfs/manifest.json`');
  cached = JSON.parse(readFileSync(f, 'utf8')) as RunContext;
  return cached;
}

export function selected(key: ClauseKey): boolean {
  const ctx = runContext();
  return ctx.only.length === 0 || ctx.only.some((o) => selects(parseKey(o), key));
}
