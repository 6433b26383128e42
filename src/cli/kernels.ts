// `run --kernel host|uml:VERSION ...` and `fusecert kernel build|list` (issue 22): the same run on
// several kernels, each UML kernel in a guest (src/kernel/guest.ts), one report directory per
// kernel and, with more than one, a comparison with a column per kernel.
import { copyFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildKernel, findKernel, listKernels, parseKernelSpec, kernelCache, KernelError, type KernelMeta } from '../kernel/build.ts';
import { runInGuest, GuestError } from '../kernel/guest.ts';
import { prepareBundles } from '../../bin/bundle.mjs';
import { HANDOFF_VARS } from '../runenv/index.ts';
import { writeComparison } from '../report/compare.ts';
import type { ServerSpec } from '../manifest/index.ts';
import { openRunState, VERSION, type RunOptions } from './run.ts';
import { UsageError, show as q, type Parsed } from './args.ts';
import type { Io } from './commands.ts';

export type KernelTarget = { kind: 'host'; label: 'host' } | { kind: 'uml'; label: string; version: string };

/** --kernel values: host, uml:6.12, uml:6.12.118 (default: host alone). */
export function parseKernels(values: string[]): KernelTarget[] {
  if (values.length === 0) return [{ kind: 'host', label: 'host' }];
  const out: KernelTarget[] = [];
  for (const v of values) {
    let t: KernelTarget;
    if (v === 'host') t = { kind: 'host', label: 'host' };
    else {
      const m = /^uml:(\d+\.\d+(?:\.\d+)?)$/.exec(v);
      if (!m) throw new UsageError(`--kernel ${q(v)}: expected host or uml:VERSION (uml:6.12, uml:6.18.2; see fusecert kernel list)`);
      t = { kind: 'uml', label: `uml-${m[1]}`, version: m[1]! };
    }
    if (out.some((x) => x.label === t.label)) throw new UsageError(`--kernel ${q(v)} is given twice`);
    out.push(t);
  }
  return out;
}

/** The cached kernel for a target; a Debian series (6.12) is built when missing, a tree must be built first. */
async function kernelFor(t: Extract<KernelTarget, { kind: 'uml' }>, line: (l: string) => void): Promise<KernelMeta> {
  const found = findKernel(t.version);
  if (found) return found;
  if (/^\d+\.\d+$/.test(t.version)) {
    line(`no UML kernel ${t.version} in ${kernelCache()}: building one from Debian's linux-source-${t.version} (once; later runs reuse it)`);
    try {
      return (await buildKernel({ kind: 'debian', series: t.version }, { progress: line })).meta;
    } catch (e) {
      if (e instanceof KernelError) throw new KernelError(`uml:${t.version}: ${e.message}`);
      throw e;
    }
  }
  const have = listKernels().map((k) => k.version);
  throw new KernelError(
    `no UML kernel ${t.version} in ${kernelCache()}${have.length ? ` (cached: ${have.join(', ')})` : ''}: build one from its source tree with fusecert kernel build PATH/TO/linux-${t.version}`,
  );
}

/** The guest's fusecert command line: the host's run options, reports to the guest's view of OUT. */
function guestArgv(argv: string[], a: Parsed, opts: RunOptions, dir: string): string[] {
  const given = (name: string) => argv.some((w) => w === `--${name}` || w.startsWith(`--${name}=`));
  const outDir = dir;
  const out = ['run'];
  for (const s of a.lists.server!) out.push('--server', s);
  if (opts.only.length) out.push('--only', opts.only.join(','));
  if (opts.families.length) out.push('--family', opts.families.join(','));
  out.push('--seed', String(opts.seed), '--fsx-runs', String(opts.fsxRuns));
  // one CPU, several times slower than the host: a clause gets three times the host's default
  out.push('--deadline', String(given('deadline') ? opts.deadlineMs : 3 * opts.deadlineMs));
  if (given('jobs')) out.push('--jobs', String(opts.jobs));
  if (opts.strict) out.push('--strict');
  if (opts.shuffle) out.push('--shuffle');
  if (opts.quiet) out.push('--quiet');
  if (a.strings.baseline !== undefined) out.push('--baseline', path.resolve(a.strings.baseline), '--baseline-tolerance', a.strings['baseline-tolerance']!);
  out.push('--out', outDir);
  return out;
}

/** What the guest's init exports: the user's environment but the run's own hand-over and the host's paths. */
function guestEnv(): Record<string, string> {
  const skip = new Set([...HANDOFF_VARS, 'TMPDIR', 'HOME', 'PWD', 'OLDPWD', 'SHLVL', '_', 'NODE_OPTIONS', 'FUSECERT_KERNEL_CACHE']);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || skip.has(k) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || k.startsWith('VITEST') || k.startsWith('npm_')) continue;
    env[k] = v;
  }
  return env;
}

const GUEST_TIMEOUT_MS = () => Number(process.env.FUSECERT_GUEST_TIMEOUT_MS) || 3_600_000;

export async function runOnKernels(
  kernels: KernelTarget[],
  c: {
    argv: string[];
    parsed: Parsed;
    opts: RunOptions;
    specs: ServerSpec[];
    io: Io;
    certifyHere: (out: string) => Promise<{ code: number; files: string[] }>;
  },
): Promise<number> {
  const { io, opts, specs } = c;
  let code = 0;
  const files: string[] = [];
  for (const k of kernels) {
    const out = kernels.length > 1 ? path.join(opts.outDir, k.label) : opts.outDir;
    if (k.kind === 'host') {
      io.out(`fusecert: kernel host (${os.release()})`);
      const r = await c.certifyHere(out);
      code = Math.max(code, r.code);
      files.push(...r.files);
      continue;
    }
    const prefix = `[${k.label}]`;
    const line = (l: string) => io.out(`${prefix} ${l}`);
    const meta = await kernelFor(k, line);
    await prepareBundles(); // the guest sees the checkout read-only: it can use bundles, not make them
    line(`booting Linux ${meta.version} (User-Mode Linux, ${meta.source}) for ${specs.map((s) => s.name).join(', ')}`);
    // the host side is a run of its own: an interrupt or SIGKILL of this process ends the guest
    const run = await openRunState();
    let exitCode: number;
    try {
      const g = await runInGuest(meta, {
        argv: guestArgv(c.argv, c.parsed, opts, out),
        out,
        cwd: io.cwd,
        env: guestEnv(),
        line,
        timeoutMs: GUEST_TIMEOUT_MS(),
      });
      exitCode = g.exitCode;
      line(`guest powered off after ${(g.ms / 1000).toFixed(0)} s (boot ${(g.bootMs / 1000).toFixed(1)} s), exit ${g.exitCode}`);
    } catch (e) {
      if (e instanceof GuestError) throw new KernelError(`${k.label}: ${e.message}`);
      throw e;
    } finally {
      for (const l of run.close()) io.err(`fusecert: ${prefix} cleaned up ${l}`);
    }
    // the guest's exit code 2 is an error of its run (its message is above): the host's too
    code = Math.max(code, exitCode);
    const kernelFiles = specs.length > 1 ? specs.map((s) => path.join(out, s.name, 'results.json')) : [path.join(out, 'results.json')];
    files.push(...kernelFiles.filter((f) => existsSync(f)));
    if (opts.junit && existsSync(path.join(out, 'junit.xml')) && specs.length === 1)
      copyFileSync(path.join(out, 'junit.xml'), kernels.length > 1 ? opts.junit.replace(/(\.xml)?$/, `-${k.label}.xml`) : opts.junit);
  }
  if (kernels.length > 1 && files.length > 1) {
    for (const ext of ['html', 'md']) {
      const target = path.join(opts.outDir, `compare.${ext}`);
      writeComparison(files, target, VERSION);
      io.out(`comparison of ${kernels.map((k) => k.label).join(', ')}: ${path.relative(io.cwd, target)}`);
    }
  }
  return code;
}

/** `fusecert kernel build SPEC` and `fusecert kernel list`. */
export async function cmdKernel(words: string[], io: Io): Promise<number> {
  const [verb, ...rest] = words;
  if (verb === 'list') {
    if (rest.length) throw new UsageError(`kernel list takes no arguments (got ${rest.map(q).join(' ')})`);
    const ks = listKernels();
    if (!ks.length) {
      io.out(`no UML kernels in ${kernelCache()} (fusecert kernel build 6.12 builds one)`);
      return 0;
    }
    io.out(`UML kernels in ${kernelCache()}:`);
    for (const k of ks)
      io.out(
        `  uml:${k.version.padEnd(10)} ${k.key}  ${(k.bytes / 2 ** 20).toFixed(0)} MiB, built ${k.builtAt.slice(0, 16).replace('T', ' ')} in ${Math.round(k.buildSeconds / 60)} min from ${k.source}${k.absent.length ? `; without ${k.absent.join(', ')}` : ''}`,
      );
    return 0;
  }
  if (verb === 'build') {
    if (rest.length !== 1) throw new UsageError('kernel build needs one SPEC: a Debian series (6.12) or a Linux source tree (see fusecert kernel --help)');
    const t0 = Date.now();
    const { meta, cached } = await buildKernel(parseKernelSpec(rest[0]!, io.cwd), { progress: (l) => io.out(`kernel: ${l}`) });
    io.out(
      cached
        ? `kernel: uml:${meta.version} is cached: ${meta.linux}`
        : `kernel: built uml:${meta.version} in ${Math.round((Date.now() - t0) / 1000)} s: ${meta.linux}${meta.absent.length ? ` (this release has no ${meta.absent.join(', ')})` : ''}`,
    );
    return 0;
  }
  throw new UsageError(`kernel ${verb === undefined ? '' : q(verb)}: expected build SPEC or list (see fusecert kernel --help)`);
}
