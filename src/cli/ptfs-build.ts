// Building the C programs fusecert ships as sources: the reference server (servers/ptfs) and the
// reply tracer (src/evidence/replies, a BPF loader). A checkout builds them with `npm run build`;
// an installed package has the sources but no binaries (npm packs no build output, and install
// scripts are not relied on: npm gates them, `--ignore-scripts` skips them, and the installing
// user may have no compiler). So `fusecert run` builds what is missing, and `fusecert build-ptfs`
// builds both on demand.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Check } from '../platform/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const PTFS_DIR = path.join(ROOT, 'servers/ptfs');
export const PTFS_BIN = path.join(PTFS_DIR, 'ptfs');
// the Makefile's sources (its OBJS, their headers): every .c and .h beside it, so a new module
// cannot be left out of the copy the build runs in
const SOURCES = [
  'Makefile',
  ...readdirSync(PTFS_DIR)
    .filter((f) => /\.[ch]$/.test(f))
    .sort(),
];

export class PtfsBuildError extends Error {}

export const TRACER_DIR = path.join(ROOT, 'src/evidence/replies');
export const TRACER_BIN = path.join(TRACER_DIR, 'fusecert-replies');
const TRACER_SOURCES = ['Makefile', 'replies.c', 'replies.h', 'replies.bpf.c', 'replies_obj.S'];
const TRACER_PACKAGES = 'clang libbpf-dev libelf-dev zlib1g-dev';

export function onPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(path.join(d, cmd))) return path.join(d, cmd);
  return null;
}

/** The tools the Makefile needs that are not on PATH: make, and the compiler make calls ($CC, else cc, which Debian's gcc provides). */
export function missingTools(): string[] {
  const cc = (process.env.CC || 'cc').split(/\s+/)[0]!;
  const found = (c: string) => (c.includes('/') ? existsSync(c) : onPath(c) !== null);
  return [found('make') ? null : 'make', found(cc) ? null : cc].filter((x): x is string => x !== null);
}

/** What the reply tracer's build needs besides make and cc: clang and libbpf's headers. */
export function missingTracerTools(): string[] {
  const out = missingTools();
  if (!onPath(process.env.CLANG || 'clang')) out.push('clang');
  if (!existsSync('/usr/include/bpf/libbpf.h')) out.push('libbpf headers');
  return out;
}

/**
 * make in a scratch copy of the sources beside the binary, the result renamed into place, so a
 * concurrent run sees either no binary or a whole one, and no object file is left in the package.
 */
async function makeInCopy(what: string, dir: string, sources: string[], target: string): Promise<string> {
  const missing = sources.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) throw new PtfsBuildError(`cannot build ${what}: ${missing.join(', ')} missing from ${dir}`);
  const scratch = mkdtempSync(path.join(dir, '.build-'));
  try {
    for (const f of sources) copyFileSync(path.join(dir, f), path.join(scratch, f));
    const r = await execa('make', ['-s', '-C', scratch, target], { reject: false, all: true, timeout: 300_000 });
    if (r.exitCode !== 0 || !existsSync(path.join(scratch, target))) {
      const tail = (r.all ?? '').trim().split('\n').slice(-8).join('\n');
      throw new PtfsBuildError(`building ${what} failed (make in a copy of ${dir}, exit ${r.exitCode}):\n${tail}`);
    }
    renameSync(path.join(scratch, target), path.join(dir, target));
    return path.join(dir, target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Build servers/ptfs/ptfs. */
export async function buildPtfs(): Promise<string> {
  const tools = missingTools();
  if (tools.length) throw new PtfsBuildError(`cannot build the reference server ${PTFS_BIN}: ${tools.join(' and ')} not found (apt-get install make gcc)`);
  return makeInCopy('the reference server', PTFS_DIR, SOURCES, 'ptfs');
}

/** Build the reply tracer src/evidence/replies/fusecert-replies. */
export async function buildTracer(): Promise<string> {
  const tools = missingTracerTools();
  if (tools.length)
    throw new PtfsBuildError(
      `cannot build the reply tracer ${TRACER_BIN}: ${tools.join(', ')} not found (apt-get install make gcc ${TRACER_PACKAGES}, or bash servers/install-deps.sh in a checkout)`,
    );
  return makeInCopy('the reply tracer', TRACER_DIR, TRACER_SOURCES, 'fusecert-replies');
}

/**
 * Before a run: build the reference server when it is missing. It is needed by manifests that
 * point at it and by the platform clauses of any run; a run without it goes on (those clauses skip
 * with the reason), so a failed build is a warning here.
 */
export async function ensurePtfs(log: (line: string) => void): Promise<void> {
  if (existsSync(PTFS_BIN)) return;
  log(`fusecert: the reference server is not built: building ${path.relative(process.cwd(), PTFS_BIN) || PTFS_BIN} (make, gcc)`);
  try {
    await buildPtfs();
  } catch (e) {
    if (!(e instanceof PtfsBuildError)) throw e;
    log(`fusecert: warning: ${e.message}; the platform clauses will skip (fusecert build-ptfs retries)`);
  }
}

/**
 * Before a run: build the reply tracer when it is missing. Without it the run goes on without
 * reply evidence (failures name what the user saw, not the reply that caused it), and says so.
 */
/** The tracer binary is older than one of its sources (a checkout updated since it was built). */
function tracerStale(): boolean {
  try {
    const built = statSync(TRACER_BIN).mtimeMs;
    return TRACER_SOURCES.some((f) => statSync(path.join(TRACER_DIR, f)).mtimeMs > built);
  } catch {
    return false;
  }
}

export async function ensureTracer(log: (line: string) => void): Promise<void> {
  const stale = tracerStale();
  if ((existsSync(TRACER_BIN) && !stale) || process.getuid?.() !== 0) return;
  if (missingTracerTools().length) return; // the run's reply-evidence line names what is missing
  log(
    `fusecert: the reply tracer is ${stale ? 'older than its sources: rebuilding' : 'not built: building'} ${path.relative(process.cwd(), TRACER_BIN) || TRACER_BIN} (clang, libbpf)`,
  );
  try {
    await buildTracer();
  } catch (e) {
    if (!(e instanceof PtfsBuildError)) throw e;
    log(`fusecert: warning: ${e.message}; the run goes on without reply evidence`);
  }
}

/** doctor's line for the reply tracer. */
export function tracerCheck(): Check {
  const name = 'reply tracer build';
  if (existsSync(TRACER_BIN)) return { name, ok: true, value: `built: ${TRACER_BIN}` };
  const tools = missingTracerTools();
  if (tools.length === 0) return { name, ok: true, value: 'not built yet: `fusecert run` builds it (clang, libbpf found), or `fusecert build-ptfs`' };
  return {
    name,
    ok: false,
    value: `not built, and ${tools.join(', ')} not found: failures will not name the server's replies`,
    fix: `apt-get install make gcc ${TRACER_PACKAGES}, then fusecert build-ptfs`,
  };
}

/** doctor's line for the reference server: built, or buildable on the first run, or what is missing. */
export function ptfsCheck(): Check {
  if (existsSync(PTFS_BIN)) return { name: 'reference server ptfs', ok: true, value: `built: ${PTFS_BIN}` };
  const tools = missingTools();
  if (tools.length === 0)
    return { name: 'reference server ptfs', ok: true, value: 'not built yet: `fusecert run` builds it (make, gcc found), or `fusecert build-ptfs`' };
  return {
    name: 'reference server ptfs',
    ok: false,
    value: `not built, and ${tools.join(' and ')} not found`,
    fix: `apt-get install make gcc, then fusecert build-ptfs`,
  };
}
