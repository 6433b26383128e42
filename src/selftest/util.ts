// Helpers for fusecert's own tests that drive the real CLI on real mounts.
import { received } from '../runenv/index.ts';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll } from 'vitest';
import type { Results } from '../report/index.ts';
import { findKernel, kernelCache } from '../kernel/build.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'bin/fusecert.mjs');
export const PTFS = path.join(ROOT, 'servers/ptfs/ptfs');
export const strict = received().strictTests;

/** Why a test of ours cannot run here, or null. Under FUSECERT_STRICT a reason is a failure, not a skip. */
export function missing(
  ...needs: ('root' | 'fuse' | 'tracefs' | 'ptfs' | 'bindfs' | 'fuse-overlayfs' | 'mergerfs' | 'valgrind' | 'chromium' | 'uml-6.12')[]
): string | null {
  for (const n of needs) {
    const why = (() => {
      switch (n) {
        case 'root':
          return process.getuid?.() === 0 ? null : 'needs root (mount(2), fusectl, tracefs)';
        case 'fuse':
          return existsSync('/dev/fuse') ? null : 'needs /dev/fuse';
        case 'tracefs':
          return existsSync('/sys/kernel/tracing/events/fuse') ? null : 'needs tracefs with the fuse tracepoints';
        case 'ptfs':
          return existsSync(PTFS) ? null : 'needs the reference server built (npm run build)';
        case 'bindfs':
        case 'fuse-overlayfs':
        case 'mergerfs':
        case 'valgrind':
          return process.env.PATH!.split(':').some((d) => existsSync(path.join(d, n))) ? null : `needs ${n} (apt-get install ${n})`;
        case 'chromium':
          return existsSync('/usr/bin/chromium') ? null : 'needs chromium (apt-get install chromium)';
        case 'uml-6.12':
          return findKernel('6.12') ? null : `needs a UML kernel 6.12 in ${kernelCache()} (fusecert kernel build 6.12; .ci/run builds it)`;
      }
    })();
    if (why) {
      if (strict) throw new Error(`FUSECERT_STRICT: ${why}`);
      return why;
    }
  }
  return null;
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stderr without the report of a sweep of dead runs (another test file's, left on purpose or killed). */
  ownStderr: string;
  out: string;
  results: Results | null;
  /** A run of several servers: each one's results (out/NAME/results.json), by name. */
  byServer: Record<string, Results>;
  junit: string | null;
  /** The run's own temp dir (removed when nothing was left in it). */
  tmp: string;
  /** Mounts, processes, tracefs instances and temp dirs the run left behind (should be none). */
  leftovers: string[];
  durationMs: number;
}

/**
 * Run the real CLI. Its TMPDIR is a directory of this test's own, so whatever the run leaves
 * (mounts, temp dirs, server processes naming a path in it, tracefs instances named after its
 * pid) is attributable to this run even while other runs go on in parallel.
 */
export async function fusecert(
  args: string[],
  opts: { timeoutMs?: number; signalAfterMs?: number; signal?: NodeJS.Signals; tmp?: string; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const tmp = opts.tmp ?? mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-'));
  const work = path.join(tmp, 'tmp');
  const out = path.join(tmp, 'out');
  mkdirSync(work, { recursive: true });
  const t0 = Date.now();
  const child = execa('node', [CLI, ...args, ...(args[0] === 'run' && !args.includes('--out') ? ['--out', out] : [])], {
    cwd: ROOT,
    reject: false,
    timeout: opts.timeoutMs ?? 600_000,
    env: { NO_COLOR: '1', TMPDIR: work, ...opts.env },
  });
  if (opts.signalAfterMs) setTimeout(() => child.kill(opts.signal ?? 'SIGINT'), opts.signalAfterMs);
  const r = await child;
  const f = path.join(out, 'results.json');
  let left = leftoversOf(work, child.pid ?? -1);
  // an interrupted run promises nothing left within 5 s (its guardian may still be on its way out,
  // slower on a loaded machine: seen in CI once with two test files at a time), as killed runs do
  for (const until = Date.now() + 5000; opts.signalAfterMs && left.length && Date.now() < until; left = leftoversOf(work, child.pid ?? -1))
    await new Promise((res) => setTimeout(res, 100));
  const junitFile = path.join(out, 'junit.xml');
  const res = {
    exitCode: r.exitCode ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    ownStderr: r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('fusecert: dead-run sweep: '))
      .join('\n'),
    out,
    results: existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Results) : null,
    byServer: Object.fromEntries(
      (existsSync(out) ? readdirSync(out) : [])
        .filter((d) => existsSync(path.join(out, d, 'results.json')))
        .map((d) => [d, JSON.parse(readFileSync(path.join(out, d, 'results.json'), 'utf8')) as Results]),
    ),
    junit: existsSync(junitFile) ? readFileSync(junitFile, 'utf8') : null,
    tmp,
    leftovers: left,
    durationMs: Date.now() - t0,
  };
  if (left.length === 0) rmSync(tmp, { recursive: true, force: true });
  return res;
}

export function leftoversOf(work: string, pid: number): string[] {
  const out: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = l.split(' ');
    if (f[4]?.startsWith(work + '/')) out.push(`mount ${f[4]}`);
  }
  // tsx keeps its compile cache in TMPDIR (tsx-UID): that is a cache, not a resource of the run
  for (const e of readdirSync(work)) if (!e.startsWith('tsx-')) out.push(`temp ${path.join(work, e)}`);
  const inst = '/sys/kernel/tracing/instances';
  if (existsSync(inst)) for (const i of readdirSync(inst)) if (i.startsWith(`fusecert-${pid}-`)) out.push(`tracefs ${i}`);
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(work)) out.push(`process ${p}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

const manifestDirs: string[] = [];
// registered in the root suite of each test file that imports this module
afterAll(() => {
  for (const d of manifestDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A manifest for ptfs with extra arguments (probe modes, defects), in a temp dir removed after the file's tests. */
/** The claims of servers/ptfs/manifest.json. */
export const ptfsClaims = (): Record<string, unknown> => JSON.parse(readFileSync(path.join(ROOT, 'servers/ptfs/manifest.json'), 'utf8')).claims;

export function ptfsManifest(name: string, args: string[], extra: Record<string, unknown> = {}): string {
  const base = JSON.parse(readFileSync(path.join(ROOT, 'servers/ptfs/manifest.json'), 'utf8'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-manifest-'));
  manifestDirs.push(dir);
  const m = { ...base, name, command: [PTFS, ...base.command.slice(1), ...args], version: [PTFS, '--version'], variants: {}, ...extra };
  const f = path.join(dir, 'manifest.json');
  writeFileSync(f, JSON.stringify(m, null, 2));
  return f;
}
