// Building the reference server from the C sources fusecert ships (servers/ptfs). A checkout
// builds it with `npm run build`; an installed package has the sources but no binary (npm packs no
// build output, and install scripts are not relied on: npm gates them, `--ignore-scripts` skips
// them, and the installing user may have no compiler). So `fusecert run` builds it when it is
// missing, and `fusecert build-ptfs` builds it on demand.
import { copyFileSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Check } from '../platform/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const PTFS_DIR = path.join(ROOT, 'servers/ptfs');
export const PTFS_BIN = path.join(PTFS_DIR, 'ptfs');
const SOURCES = ['Makefile', 'ptfs.c', 'fuse_proto.h'];

export class PtfsBuildError extends Error {}

function onPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(path.join(d, cmd))) return path.join(d, cmd);
  return null;
}

/** The tools the Makefile needs that are not on PATH: make, and the compiler make calls ($CC, else cc, which Debian's gcc provides). */
export function missingTools(): string[] {
  const cc = (process.env.CC || 'cc').split(/\s+/)[0]!;
  const found = (c: string) => (c.includes('/') ? existsSync(c) : onPath(c) !== null);
  return [found('make') ? null : 'make', found(cc) ? null : cc].filter((x): x is string => x !== null);
}

/**
 * Build servers/ptfs/ptfs. make runs in a scratch copy of the sources beside the binary and the
 * result is renamed into place, so a concurrent run sees either no binary or a whole one, and no
 * object file is left in the package.
 */
export async function buildPtfs(): Promise<string> {
  const missing = SOURCES.filter((f) => !existsSync(path.join(PTFS_DIR, f)));
  if (missing.length) throw new PtfsBuildError(`cannot build the reference server: ${missing.join(', ')} missing from ${PTFS_DIR}`);
  const tools = missingTools();
  if (tools.length) throw new PtfsBuildError(`cannot build the reference server ${PTFS_BIN}: ${tools.join(' and ')} not found (apt-get install make gcc)`);
  const scratch = mkdtempSync(path.join(PTFS_DIR, '.build-'));
  try {
    for (const f of SOURCES) copyFileSync(path.join(PTFS_DIR, f), path.join(scratch, f));
    const r = await execa('make', ['-s', '-C', scratch, 'ptfs'], { reject: false, all: true, timeout: 300_000 });
    if (r.exitCode !== 0 || !existsSync(path.join(scratch, 'ptfs'))) {
      const tail = (r.all ?? '').trim().split('\n').slice(-8).join('\n');
      throw new PtfsBuildError(`building the reference server failed (make in a copy of ${PTFS_DIR}, exit ${r.exitCode}):\n${tail}`);
    }
    renameSync(path.join(scratch, 'ptfs'), PTFS_BIN);
    return PTFS_BIN;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
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
