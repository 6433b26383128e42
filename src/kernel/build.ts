// User-Mode Linux kernels for `fusecert run --kernel uml:VERSION` (issue 22): built from Debian's
// linux-source-X.Y package or from a kernel tree the user points at, with the options of
// uml.config, and cached under the user's cache directory keyed by the source's version and a
// hash of the configuration, so that a second use costs nothing. A UML kernel is an ordinary
// program (`./linux ...`): building and booting one needs no root.
import { createHash } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  copyFileSync,
  chmodSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { onPath } from '../cli/ptfs-build.ts';

const CONFIG_FILE = path.join(import.meta.dirname, 'uml.config');

export class KernelError extends Error {}

/** Where built kernels live: $FUSECERT_KERNEL_CACHE, else $XDG_CACHE_HOME/fusecert/kernels, else ~/.cache/fusecert/kernels. */
export function kernelCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FUSECERT_KERNEL_CACHE) return path.resolve(env.FUSECERT_KERNEL_CACHE);
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'fusecert', 'kernels');
}

export interface ConfigLine {
  option: string;
  value: string;
  /** wanted where the release has it (a ` ?` line) */
  optional: boolean;
}

export function configLines(text = readFileSync(CONFIG_FILE, 'utf8')): ConfigLine[] {
  const out: ConfigLine[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const m = /^(CONFIG_[A-Z0-9_]+)=(\S+)(\s+\?)?$/.exec(l);
    if (!m) throw new KernelError(`${CONFIG_FILE}: cannot read ${JSON.stringify(l)}`);
    out.push({ option: m[1]!, value: m[2]!, optional: !!m[3] });
  }
  return out;
}

/** What `kernel build SPEC` builds from: a Debian linux-source series ("6.12") or a source tree. */
export type KernelSource = { kind: 'debian'; series: string } | { kind: 'tree'; dir: string };

export function parseKernelSpec(spec: string, cwd = process.cwd()): KernelSource {
  if (/^\d+\.\d+$/.test(spec)) return { kind: 'debian', series: spec };
  const dir = path.resolve(cwd, spec);
  if (existsSync(path.join(dir, 'Makefile')) && existsSync(path.join(dir, 'arch/um'))) return { kind: 'tree', dir };
  throw new KernelError(
    `${JSON.stringify(spec)} is neither a kernel series (6.12: Debian's linux-source-6.12) nor a Linux source tree (a directory with Makefile and arch/um)`,
  );
}

/** VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) of a tree's top Makefile. */
export function makefileVersion(text: string): string {
  const v = (k: string) => new RegExp(`^${k}[ \\t]*=[ \\t]*(\\S*)`, 'm').exec(text)?.[1] ?? '';
  const version = `${v('VERSION')}.${v('PATCHLEVEL')}.${v('SUBLEVEL') || '0'}${v('EXTRAVERSION')}`;
  if (!/^\d+\.\d+\.\d+/.test(version)) throw new KernelError(`cannot read the kernel version from the Makefile (got ${version})`);
  return version;
}

/** Passthrough is in 6.9 and later. */
export function passthroughCapable(version: string): boolean {
  const [a, b] = version.split('.').map(Number) as [number, number];
  return a > 6 || (a === 6 && b >= 9);
}

export interface KernelMeta {
  key: string;
  /** the kernel's release (6.12.118) */
  version: string;
  /** what it was built from: "debian linux-source-6.12 6.12.118-1" or a tree's path */
  source: string;
  /** options of uml.config the release does not have */
  absent: string[];
  builtAt: string;
  buildSeconds: number;
  compiler: string;
  /** the kernel binary */
  linux: string;
  bytes: number;
}

async function compilerId(): Promise<string> {
  const r = await execa('gcc', ['--version'], { reject: false });
  return r.exitCode === 0 ? r.stdout.split('\n')[0]!.trim() : 'no gcc';
}

const DEBIAN_TARBALL = (series: string) => `/usr/src/linux-source-${series}.tar.xz`;

async function debianPackageVersion(series: string): Promise<string | null> {
  const format = ['Status', 'Version'].map((f) => `\${${f}}`).join(' '); // dpkg-query's ${Status} ${Version}
  const r = await execa('dpkg-query', ['-W', '-f', format, `linux-source-${series}`], { reject: false });
  const m = /install ok installed (\S+)/.exec(r.stdout);
  return m && existsSync(DEBIAN_TARBALL(series)) ? m[1]! : null;
}

/** The cache key of SOURCE with this configuration and compiler, and how to describe it. */
export async function identify(src: KernelSource): Promise<{ key: string; version: string; source: string; packaged?: string }> {
  // the options, not the file's comments: a reworded comment does not rebuild every kernel
  const config = configLines()
    .map((l) => `${l.option}=${l.value}${l.optional ? ' ?' : ''}`)
    .join('\n');
  const cc = await compilerId();
  let version: string;
  let source: string;
  let packaged: string | undefined;
  if (src.kind === 'debian') {
    const pv = await debianPackageVersion(src.series);
    if (!pv)
      throw new KernelError(
        `linux-source-${src.series} is not installed (apt-get install linux-source-${src.series}, or fusecert kernel build ${src.series} as root installs it)`,
      );
    packaged = pv;
    version = /^(\d+\.\d+\.\d+)/.exec(pv)?.[1] ?? pv;
    source = `debian linux-source-${src.series} ${pv}`;
  } else {
    version = makefileVersion(readFileSync(path.join(src.dir, 'Makefile'), 'utf8'));
    source = src.dir;
  }
  if (!passthroughCapable(version)) throw new KernelError(`Linux ${version} has no FUSE passthrough (6.9 and later do): fusecert cannot certify on it`);
  const hash = createHash('sha256').update(config).update('\0').update(cc).update('\0').update(source).digest('hex').slice(0, 12);
  return { key: `${version}-${hash}`, version, source, packaged };
}

/** Kernels in the cache, newest release first. */
export function listKernels(env: NodeJS.ProcessEnv = process.env): KernelMeta[] {
  const dir = kernelCache(env);
  if (!existsSync(dir)) return [];
  const out: KernelMeta[] = [];
  for (const d of readdirSync(dir)) {
    const f = path.join(dir, d, 'meta.json');
    if (d.startsWith('.') || !existsSync(f)) continue;
    try {
      const m = JSON.parse(readFileSync(f, 'utf8')) as KernelMeta;
      if (existsSync(m.linux)) out.push(m);
    } catch {
      /* a damaged entry is not a kernel */
    }
  }
  const num = (v: string) => v.split(/[.-]/).map((x) => Number(x) || 0);
  return out.sort((a, b) => {
    const x = num(a.version);
    const y = num(b.version);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
    return b.builtAt.localeCompare(a.builtAt);
  });
}

/** A cached kernel whose release is VERSION or starts with VERSION. (6.12 → 6.12.118), or null. */
export function findKernel(version: string, env: NodeJS.ProcessEnv = process.env): KernelMeta | null {
  return listKernels(env).find((k) => k.version === version || k.version.startsWith(`${version}.`)) ?? null;
}

/** What builds killed mid-way left in the cache (.build-KEY-PID, .stage-KEY-PID of a pid that is gone). */
function removeDeadBuilds(cache: string): void {
  for (const d of readdirSync(cache)) {
    const m = /^\.(?:build|stage)-.*-(\d+)$/.exec(d);
    if (!m) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      alive = false;
    }
    if (!alive) rmSync(path.join(cache, d), { recursive: true, force: true });
  }
}

export interface BuildOptions {
  /** a line now and then while the build runs */
  progress?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  jobs?: number;
}

/** Build (or find in the cache) the UML kernel for SRC. */
export async function buildKernel(src: KernelSource, opts: BuildOptions = {}): Promise<{ meta: KernelMeta; cached: boolean }> {
  const progress = opts.progress ?? (() => {});
  const env = opts.env ?? process.env;
  if (src.kind === 'debian' && !(await debianPackageVersion(src.series))) {
    if (process.getuid?.() !== 0)
      throw new KernelError(`linux-source-${src.series} is not installed and installing it needs root: apt-get install linux-source-${src.series}`);
    progress(`installing linux-source-${src.series} with apt-get`);
    const r = await execa('apt-get', ['install', '-y', '-q', `linux-source-${src.series}`], {
      reject: false,
      all: true,
      env: { DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.exitCode !== 0)
      throw new KernelError(
        `apt-get install linux-source-${src.series} failed (exit ${r.exitCode}): ${(r.all ?? '').trim().split('\n').slice(-3).join(' | ')}`,
      );
  }
  const id = await identify(src);
  const cache = kernelCache(env);
  const final = path.join(cache, id.key);
  const metaFile = path.join(final, 'meta.json');
  if (existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as KernelMeta;
    if (existsSync(meta.linux)) return { meta, cached: true };
  }
  const missing = ['make', 'gcc', 'flex', 'bison', 'bc'].filter((t) => !onPath(t));
  if (missing.length) throw new KernelError(`building a kernel needs ${missing.join(', ')} (apt-get install build-essential flex bison bc libelf-dev)`);
  mkdirSync(cache, { recursive: true });
  removeDeadBuilds(cache);
  const work = path.join(cache, `.build-${id.key}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const log = path.join(cache, `${id.key}.build.log`); // kept after a failed build, removed after a good one
  const t0 = Date.now();
  try {
    let tree: string;
    if (src.kind === 'debian') {
      progress(`unpacking ${DEBIAN_TARBALL(src.series)}`);
      tree = path.join(work, 'src');
      mkdirSync(tree);
      await execa('tar', ['-xJf', DEBIAN_TARBALL(src.series), '-C', tree, '--strip-components=1']);
    } else {
      tree = src.dir;
    }
    const out = path.join(work, 'out');
    mkdirSync(out);
    const logStream = createWriteStream(log);
    const make = async (args: string[], what: string) => {
      const jobs = opts.jobs ?? Math.max(1, os.availableParallelism());
      const p = execa('make', ['-C', tree, `O=${out}`, 'ARCH=um', `-j${jobs}`, ...args], {
        reject: false,
        all: true,
        env: { ...process.env, KBUILD_BUILD_USER: 'fusecert' },
      });
      let last = '';
      p.all?.on('data', (d: Buffer) => {
        logStream.write(d);
        const lines = d.toString().trim().split('\n');
        last = lines[lines.length - 1]!.trim() || last;
      });
      const tick = setInterval(() => progress(`${what}: ${Math.round((Date.now() - t0) / 1000)} s, ${last.slice(0, 80)}`), 30_000);
      const r = await p.finally(() => clearInterval(tick));
      if (r.exitCode !== 0) {
        const tail = (r.all ?? '').trim().split('\n').slice(-6).join('\n');
        throw new KernelError(`make ${args.join(' ')} failed (exit ${r.exitCode}; the whole log is ${log}):\n${tail}`);
      }
    };
    progress(`configuring Linux ${id.version} for UML`);
    await make(['defconfig'], 'defconfig');
    const lines = configLines();
    const cfgArgs = lines.flatMap((l) => (l.value === 'y' ? ['--enable', l.option.slice(7)] : ['--set-val', l.option.slice(7), l.value]));
    await execa(path.join(tree, 'scripts/config'), ['--file', path.join(out, '.config'), ...cfgArgs]);
    await make(['olddefconfig'], 'olddefconfig');
    const got = readFileSync(path.join(out, '.config'), 'utf8');
    const has = (l: ConfigLine) => got.split('\n').includes(`${l.option}=${l.value}`);
    const lost = lines.filter((l) => !l.optional && !has(l)).map((l) => l.option);
    if (lost.length)
      throw new KernelError(
        `Linux ${id.version} cannot be configured for fusecert: ${lost.join(', ')} not available after olddefconfig (src/kernel/uml.config)`,
      );
    const absent = lines.filter((l) => l.optional && !has(l)).map((l) => l.option);
    progress(
      `building Linux ${id.version} for UML (make -j${opts.jobs ?? os.availableParallelism()}; ~10 min on 2 cores)${absent.length ? `; this release has no ${absent.join(', ')}` : ''}`,
    );
    await make(['linux'], 'building');
    logStream.end();
    rmSync(log, { force: true });
    const stage = path.join(cache, `.stage-${id.key}-${process.pid}`);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(stage);
    copyFileSync(path.join(out, 'linux'), path.join(stage, 'linux'));
    chmodSync(path.join(stage, 'linux'), 0o755);
    copyFileSync(path.join(out, '.config'), path.join(stage, 'config'));
    const meta: KernelMeta = {
      key: id.key,
      version: id.version,
      source: id.source,
      absent,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - t0) / 1000),
      compiler: await compilerId(),
      linux: path.join(final, 'linux'),
      bytes: statSync(path.join(stage, 'linux')).size,
    };
    writeFileSync(path.join(stage, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    try {
      renameSync(stage, final);
    } catch {
      rmSync(stage, { recursive: true, force: true }); // a concurrent build of the same key got there first
      if (!existsSync(metaFile)) throw new KernelError(`could not move the built kernel into ${final}`);
    }
    return { meta: JSON.parse(readFileSync(metaFile, 'utf8')) as KernelMeta, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
