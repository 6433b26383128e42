// The commands behind `fusecert`: main(argv, io) parses, validates every input before anything
// mounts, dispatches, and turns every error into one line and an exit code. It has no side effects
// at import, so the argv fuzz test drives it in-process; src/cli/main.ts is the process entry.
import { ensurePtfs, ensureTracer, buildPtfs, buildTracer, ptfsCheck, tracerCheck, PtfsBuildError } from './ptfs-build.ts';
import path from 'node:path';
import { statSync, openSync, closeSync, unlinkSync, readFileSync, writeFileSync } from 'node:fs';
import { CLAUSES, isClauseId } from '../catalogue/index.ts';
import { loadServer, parseManifest, ManifestError, type ServerSpec } from '../manifest/index.ts';
import { probe, fatalProblems, formatChecks } from '../platform/index.ts';
import { runServer, resolveReference, suiteFiles, sweepDeadRuns, checkTransport, EnvironmentError, VERSION, type RunOptions } from './run.ts';
import { writeComparison, loadResults, ResultsInputError } from '../report/compare.ts';
import { explainText, matchingResults } from './explain.ts';
import { expectEntries, mergeExpect } from '../report/expect.ts';
import type { Results } from '../report/index.ts';
import { parseKernels, runOnKernels, cmdKernel } from './kernels.ts';
import { KernelError } from '../kernel/build.ts';
import { COMMAND_NAMES, UsageError, commandHelp, isCommand, parseCommand, usage, show as q } from './args.ts';

export const ISSUES = 'the fusecert issue tracker';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Relative paths on the command line are relative to this. */
  cwd: string;
  /** FUSECERT_DEBUG=1: internal errors print their stack. */
  env: Record<string, string | undefined>;
  /**
   * Validate everything the command line names, then stop before touching the platform (no probe,
   * no mount). For the argv fuzz test: every exit there is an answer to the argv alone.
   */
  dryRun?: boolean;
}

export const processIo = (): Io => ({
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
  cwd: process.cwd(),
  env: process.env,
});

function whole(name: string, v: string | undefined, min: number, max: number): number {
  const n = v !== undefined && /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} ${q(v ?? '')}: expected a whole number from ${min} to ${max}`);
  return n;
}

function statOf(p: string) {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new UsageError(`${q(p)}: ${code ?? (e as Error).message}`);
  }
}

/** Can we create a file in this existing directory? As root only a try answers that (read-only mounts, /proc, /sys). */
function canCreateIn(dir: string): string | null {
  const probeFile = path.join(dir, `.fusecert-write-check-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    closeSync(openSync(probeFile, 'wx'));
    unlinkSync(probeFile);
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

/** The nearest existing ancestor of p (p itself when it exists). */
function nearestExisting(p: string): { dir: string; st: NonNullable<ReturnType<typeof statOf>> } {
  for (let d = p; ; d = path.dirname(d)) {
    const st = statOf(d);
    if (st) return { dir: d, st };
    if (d === path.dirname(d)) throw new UsageError(`${q(p)}: no existing directory above it`);
  }
}

/** A directory fusecert will create if needed and write into (--out). */
function checkOutDir(option: string, dir: string): void {
  const { dir: at, st } = nearestExisting(dir);
  if (!st.isDirectory())
    throw new UsageError(`${option} ${q(dir)}: ${at === dir ? 'is a file' : `${q(at)} is a file`}; expected a directory (it is created when missing)`);
  const why = canCreateIn(at);
  if (why) throw new UsageError(`${option} ${q(dir)}: cannot write in ${q(at)} (${why}); expected a writable directory`);
}

/**
 * A file fusecert will write (--junit, compare -o). parentMustExist: its directory must exist, so a
 * mistyped directory is caught before a long run, unless `createdBy` (--out) creates it.
 */
function checkOutFile(option: string, file: string, parentMustExist: boolean, createdBy?: string): void {
  const st = statOf(file);
  if (st?.isDirectory()) throw new UsageError(`${option} ${q(file)}: is a directory; expected a file name`);
  // Writing into a FIFO without a reader blocks for ever; /dev/null and the like are fine.
  if (st && !st.isFile() && !st.isCharacterDevice())
    throw new UsageError(`${option} ${q(file)}: is not a regular file (a pipe or socket); expected a file name`);
  const parent = path.dirname(file);
  const under = createdBy !== undefined && !path.relative(createdBy, parent).startsWith('..') && !path.isAbsolute(path.relative(createdBy, parent));
  if (!parentMustExist || under) {
    checkOutDir(option, parent);
    return;
  }
  const pst = statOf(parent);
  if (!pst) throw new UsageError(`${option} ${q(file)}: directory ${q(parent)} does not exist; expected a file in an existing directory or under --out`);
  if (!pst.isDirectory()) throw new UsageError(`${option} ${q(file)}: ${q(parent)} is not a directory; expected a file in an existing directory`);
  const why = canCreateIn(parent);
  if (why) throw new UsageError(`${option} ${q(file)}: cannot write in ${q(parent)} (${why}); expected a writable directory`);
}

/** --server PATH[@variant]: the manifest must be a regular file before it is read (a FIFO or /dev/zero would block or never end). */
function serverSpec(value: string, cwd: string): ServerSpec {
  const m = /^(.*?)(?:@([a-z0-9-]+))?$/s.exec(value)!;
  if (m[1] === '') throw new UsageError(`--server ${q(value)}: expected the path of a manifest.json (e.g. servers/ptfs/manifest.json)`);
  // loadServer() splits PATH@variant with a pattern that does not cross line breaks.
  if (/[\n\r\u2028\u2029]/.test(value)) throw new UsageError(`--server ${q(value)}: a path with a line break is not supported; rename the manifest`);
  const file = path.resolve(cwd, m[1]!);
  const st = statOf(file);
  if (st && !st.isFile())
    throw new UsageError(
      `--server ${q(value)}: ${st.isDirectory() ? 'is a directory' : 'is not a regular file'}; expected the path of a manifest.json (e.g. servers/ptfs/manifest.json)`,
    );
  if (st && st.size > 4 * 1024 * 1024) throw new UsageError(`--server ${q(value)}: ${st.size} bytes is too large for a manifest.json`);
  return loadServer(m[2] ? `${file}@${m[2]}` : file);
}

/** --baseline-tolerance R: a fraction from 0 to 1. */
function fraction(name: string, v: string): number {
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 1)) throw new UsageError(`--${name} ${q(v)}: expected a fraction from 0 to 1 (0.15 tolerates a 15 % drop)`);
  return n;
}

/** One results.json read as a baseline: of this major version and of this server, else an input error. */
function readBaseline(file: string, server: string, cwd: string): { results: Results; file: string } {
  let results: Results;
  try {
    [results] = loadResults([file], VERSION) as [Results];
  } catch (e) {
    if (e instanceof ResultsInputError) throw new UsageError(`--baseline ${e.message}`);
    throw e;
  }
  const shown = path.relative(cwd, file) || file;
  if (results.server.name !== server) {
    throw new UsageError(
      `--baseline ${q(shown)}: a run of server ${q(results.server.name)}, not ${q(server)}; a baseline is an earlier run of the same server (with several servers give the --out directory of an earlier run)`,
    );
  }
  return { results, file: shown };
}

/**
 * --baseline PATH for the servers of a run. A file: the baseline of the one server. A directory: the
 * --out of an earlier run, DIR/NAME/results.json per server (several servers), or DIR/results.json
 * (one server). A server without results in the directory runs without a baseline (a server new to
 * the run); a directory with none for any server is an input error.
 */
function resolveBaselines(value: string, specs: ServerSpec[], cwd: string, note: (line: string) => void): Map<string, { results: Results; file: string }> {
  const at = path.resolve(cwd, value);
  const st = statOf(at);
  const out = new Map<string, { results: Results; file: string }>();
  if (!st) throw new UsageError(`--baseline ${q(value)}: no such file or directory; expected an earlier results.json or the --out directory of an earlier run`);
  if (!st.isDirectory()) {
    if (specs.length > 1)
      throw new UsageError(
        `--baseline ${q(value)}: a file, but the run certifies ${specs.length} servers; give the --out directory of an earlier run (DIR/NAME/results.json per server)`,
      );
    out.set(specs[0]!.name, readBaseline(at, specs[0]!.name, cwd));
    return out;
  }
  for (const s of specs) {
    const candidates = [path.join(at, s.name, 'results.json'), ...(specs.length === 1 ? [path.join(at, 'results.json')] : [])];
    const file = candidates.find((f) => statOf(f) !== null);
    if (file) out.set(s.name, readBaseline(file, s.name, cwd));
    else note(`no baseline for ${s.name} in ${value} (no ${path.join(value, s.name, 'results.json')}): every failure of it counts`);
  }
  if (out.size === 0)
    throw new UsageError(
      `--baseline ${q(value)}: holds no results.json for ${specs.map((s) => s.name).join(', ')}; expected ${specs.length > 1 ? 'DIR/NAME/results.json per server' : 'DIR/results.json or DIR/NAME/results.json'}`,
    );
  return out;
}

async function cmdRun(argv: string[], io: Io): Promise<number> {
  const a = parseCommand('run', argv);
  if (a.help) return help(io, 'run');
  const servers = a.lists.server!;
  if (servers.length === 0) throw new UsageError('run needs --server PATH (e.g. --server servers/ptfs/manifest.json; see fusecert run --help)');
  const opts: RunOptions = {
    only: a.lists.only!,
    families: a.lists.family!,
    jobs: whole('jobs', a.strings.jobs, 1, 256),
    strict: a.flags.strict!,
    seed: a.strings.seed !== undefined ? whole('seed', a.strings.seed, 0, 2 ** 31 - 1) : Math.floor(Math.random() * 2 ** 31),
    shuffle: a.flags.shuffle!,
    fsxRuns: whole('fsx-runs', a.strings['fsx-runs'], 1, 1_000_000),
    deadlineMs: whole('deadline', a.strings.deadline, 1000, 86_400_000),
    outDir: path.resolve(io.cwd, a.strings.out!),
    junit: a.strings.junit !== undefined ? path.resolve(io.cwd, a.strings.junit) : null,
    quiet: a.flags.quiet!,
  };
  suiteFiles(opts); // --only/--family name known clauses and families
  const kernels = parseKernels(a.lists.kernel!);
  // An installed package ships ptfs as C sources: built before a manifest naming it is resolved.
  if (!io.dryRun) {
    await ensurePtfs((l) => io.err(l));
    await ensureTracer((l) => io.err(l));
  }
  const specs: ServerSpec[] = servers.map((s) => serverSpec(s, io.cwd));
  const names = specs.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new UsageError(`two --server arguments name the same server (${names.join(', ')})`);
  // Where the reports go is checked before the preflight mounts anything: a run that cannot write
  // its results fails now, not after the certification.
  checkOutDir('--out', opts.outDir);
  if (specs.length > 1) for (const s of specs) checkOutDir('--out', path.join(opts.outDir, s.name));
  if (opts.junit) checkOutFile('--junit', opts.junit, true, opts.outDir);
  const tolerance = fraction('baseline-tolerance', a.strings['baseline-tolerance']!);
  if (a.strings.baseline === undefined && argv.some((w) => /^--baseline-tolerance(=|$)/.test(w)))
    throw new UsageError('--baseline-tolerance needs --baseline PATH (see fusecert run --help)');
  const notes: string[] = [];
  const baselines =
    a.strings.baseline !== undefined
      ? resolveBaselines(a.strings.baseline, specs, io.cwd, (l) => notes.push(l))
      : new Map<string, { results: Results; file: string }>();
  if (io.dryRun) {
    const against = [...baselines.values()].map((b) => b.file);
    io.out(
      `dry run: would certify ${names.join(', ')} (${suiteFiles(opts).length} suite file(s)), reports in ${opts.outDir}${against.length ? `, baseline ${against.join(', ')} (tolerance ${tolerance})` : ''}`,
    );
    return 0;
  }

  if (!(kernels.length === 1 && kernels[0]!.kind === 'host')) {
    for (const l of notes) io.out(`fusecert: ${l}`);
    return await runOnKernels(kernels, { argv, parsed: a, opts, specs, io, certifyHere: (out) => certifyHere(specs, opts, baselines, tolerance, [], io, out) });
  }
  return (await certifyHere(specs, opts, baselines, tolerance, notes, io, opts.outDir)).code;
}

/** Today's run: every server on this machine's kernel, reports under OUT. */
async function certifyHere(
  specs: ServerSpec[],
  opts: RunOptions,
  baselines: Map<string, { results: Results; file: string }>,
  tolerance: number,
  notes: string[],
  io: Io,
  outDir: string,
): Promise<{ code: number; files: string[] }> {
  const platform = await probe();
  const fatal = fatalProblems(platform);
  if (fatal.length) throw new EnvironmentError(fatal.map((c) => `${c.name}: ${c.value}: ${c.fix}`).join('; '));
  for (const spec of specs) checkTransport(spec, platform);
  const reference = resolveReference();
  // what dead runs left (another run's, not this one's): marked, so that a reader of stderr tells
  // the sweep's report from this run's own errors
  for (const l of sweepDeadRuns()) io.err(`fusecert: dead-run sweep: ${l}`);
  for (const l of notes) io.out(`fusecert: ${l}`);

  let code = 0;
  const files: string[] = [];
  for (const spec of specs) {
    const out = specs.length > 1 ? path.join(outDir, spec.name) : outDir;
    const junit = opts.junit && specs.length > 1 ? opts.junit.replace(/(\.xml)?$/, `-${spec.name}.xml`) : opts.junit;
    io.out(`fusecert ${VERSION}: certifying ${spec.name} (${spec.file}) on Linux ${platform.kernel}, seed ${opts.seed}`);
    const baseline = baselines.get(spec.name) ?? null;
    if (baseline)
      io.out(
        `baseline: ${baseline.file} (${baseline.results.started}); failing there too is known, not new; readRatio/writeRatio drop when their ~95 % interval lies more than ${Math.round(tolerance * 100)} % below the baseline's`,
      );
    const res = await runServer(spec, reference, platform, { ...opts, junit, baseline, baselineTolerance: tolerance }, out);
    files.push(path.join(out, 'results.json'));
    code = Math.max(code, res.summary.exitCode);
    io.out(`reports: ${path.relative(io.cwd, out) || '.'}/results.json, ${path.relative(io.cwd, junit ?? path.join(out, 'junit.xml'))}`);
  }
  if (specs.length > 1) {
    for (const ext of ['html', 'md']) {
      const target = path.join(outDir, `compare.${ext}`);
      writeComparison(files, target, VERSION);
      io.out(`comparison: ${path.relative(io.cwd, target)}`);
    }
  }
  return { code, files };
}

async function cmdDoctor(argv: string[], io: Io): Promise<number> {
  if (parseCommand('doctor', argv).help) return help(io, 'doctor');
  if (io.dryRun) return 0;
  const p = await probe();
  io.out(`fusecert ${VERSION} doctor\n`);
  p.checks.push(ptfsCheck(), tracerCheck());
  io.out(formatChecks(p));
  const { sweepStaleInstances } = await import('../evidence/index.ts');
  const swept = sweepStaleInstances();
  if (swept.length) io.out(`\nremoved tracefs instances of dead fusecert runs: ${swept.join(', ')}`);
  const missing = p.checks.filter((c) => !c.ok);
  io.out(
    missing.length
      ? `\n${missing.length} problem(s): passthrough and evidence clauses that need them will be skipped with the reason.`
      : '\nready: every clause can run.',
  );
  return fatalProblems(p).length ? 2 : 0;
}

function cmdClauses(argv: string[], io: Io): number {
  const a = parseCommand('clauses', argv);
  if (a.help) return help(io, 'clauses');
  if (a.flags.json) {
    io.out(JSON.stringify(CLAUSES, null, 2));
    return 0;
  }
  const w = Math.max(...CLAUSES.map((c) => c.title.length));
  io.out(CLAUSES.map((c) => `${c.id.padEnd(8)} ${c.level.padEnd(6)} ${c.title.padEnd(w)}  [${c.observes}]`).join('\n'));
  return 0;
}

function cmdCompare(argv: string[], io: Io): number {
  const a = parseCommand('compare', argv);
  if (a.help) return help(io, 'compare');
  const target = path.resolve(io.cwd, a.strings.o!);
  checkOutFile('-o', target, false);
  try {
    writeComparison(
      a.positionals.map((f) => path.resolve(io.cwd, f)),
      target,
      VERSION,
    );
  } catch (e) {
    // The checks above cannot foresee everything a write meets (a full disk, a device that refuses).
    const err = e as NodeJS.ErrnoException;
    if (err.syscall && err.code && err.path?.startsWith(path.dirname(target))) throw new UsageError(`-o ${q(target)}: cannot write it (${err.code})`);
    throw e;
  }
  io.out(`comparison: ${q(path.relative(io.cwd, target) || target)}`);
  return 0;
}

function cmdExplain(argv: string[], io: Io): number {
  const a = parseCommand('explain', argv);
  if (a.help) return help(io, 'explain');
  const [file, id, ...more] = a.positionals;
  if (!file || !id || more.length) throw new UsageError('explain needs RESULTS.json and one clause id (see fusecert explain --help)');
  const [res] = loadResults([path.resolve(io.cwd, file)], VERSION) as [Results];
  const found = matchingResults(res, id);
  if (!found.length) throw new UsageError(`${q(file)} has no result for ${q(id)} (it has ${res.clauses.length} results; fusecert clauses lists the ids)`);
  const failing = found.filter((c) => c.status === 'fail' || c.status === 'hung' || c.status === 'xfail');
  const shown = failing.length ? failing : found;
  if (shown.length > 3) {
    io.out(
      `${shown.length} results of ${id} ${failing.length ? 'failed' : 'match'}; the first is explained, name one for another: ${shown.map((c) => c.id).join(', ')}\n`,
    );
  }
  io.out(explainText(res, shown[0]!));
  return 0;
}

function cmdExpect(argv: string[], io: Io): number {
  const a = parseCommand('expect', argv);
  if (a.help) return help(io, 'expect');
  if (a.strings.from === undefined) throw new UsageError('expect needs --from RESULTS.json (see fusecert expect --help)');
  const [res] = loadResults([path.resolve(io.cwd, a.strings.from)], VERSION) as [Results];
  const target = a.strings.o !== undefined ? path.resolve(io.cwd, a.strings.o) : null;
  if (target) checkOutFile('-o', target, true);
  let manifest: { file: string; raw: Record<string, unknown>; indent: string } | null = null;
  if (a.strings.write !== undefined) {
    const file = path.resolve(io.cwd, a.strings.write);
    const st = statOf(file);
    if (!st?.isFile())
      throw new UsageError(
        `--write ${q(a.strings.write)}: ${!st ? 'no such file' : st.isDirectory() ? 'is a directory' : 'is not a regular file'}; expected the manifest.json of the server the results are of`,
      );
    if (st.size > 4 * 1024 * 1024) throw new UsageError(`--write ${q(a.strings.write)}: ${st.size} bytes is too large for a manifest.json`);
    const text = readFileSync(file, 'utf8');
    const parsed = parseManifest(text, file); // a manifest that does not load is not rewritten
    const server = res.server.name.replace(/@.*$/, '');
    if (parsed.name !== server)
      throw new UsageError(`--write ${q(a.strings.write)}: the manifest of server ${q(parsed.name)}, but the results are of ${q(res.server.name)}`);
    const why = canCreateIn(path.dirname(file));
    if (why) throw new UsageError(`--write ${q(a.strings.write)}: cannot write in ${q(path.dirname(file))} (${why})`);
    manifest = { file, raw: JSON.parse(text) as Record<string, unknown>, indent: /^\{\r?\n([ \t]+)/.exec(text)?.[1] ?? '  ' };
  }
  const entries = expectEntries(res);
  const unknown = entries.find((e) => !isClauseId(e.clause));
  if (unknown)
    throw new UsageError(`--from ${q(a.strings.from)}: clause ${q(unknown.clause)} is not in the catalogue of fusecert ${VERSION} (see fusecert clauses)`);
  const json = JSON.stringify(entries, null, 2) + '\n';
  // The checks above cannot foresee everything a write meets (a full disk, a device that refuses).
  const write = (option: string, file: string, text: string) => {
    try {
      writeFileSync(file, text);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.syscall && err.code) throw new UsageError(`${option} ${q(file)}: cannot write it (${err.code})`);
      throw e;
    }
  };
  if (target) {
    write('-o', target, json);
    io.out(`expect: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} written to ${q(path.relative(io.cwd, target) || target)}`);
  }
  if (manifest) {
    const m = mergeExpect(manifest.raw, entries);
    const text = JSON.stringify(m.manifest, null, manifest.indent) + '\n';
    parseManifest(text, manifest.file); // what we write loads
    write('--write', manifest.file, text);
    io.out(
      `${q(path.relative(io.cwd, manifest.file) || manifest.file)}: ${m.added} expect entr${m.added === 1 ? 'y' : 'ies'} added${m.replaced ? `, ${m.replaced} replaced` : ''}; replace each TODO with the reason`,
    );
  }
  if (!target && !manifest) io.out(json);
  return 0;
}

function help(io: Io, cmd: Parameters<typeof commandHelp>[0]): number {
  io.out(commandHelp(cmd));
  return 0;
}

/** Errors that answer the user's input or environment: one line, exit 2. Anything else is a bug of ours. */
export function isInputError(e: unknown): e is Error {
  return (
    e instanceof UsageError ||
    e instanceof ManifestError ||
    e instanceof EnvironmentError ||
    e instanceof ResultsInputError ||
    e instanceof PtfsBuildError ||
    e instanceof KernelError
  );
}

/** The one line (and, with FUSECERT_DEBUG=1, the stack) an error gets; always exit code 2. */
export function reportError(e: unknown, io: Pick<Io, 'err' | 'env'>): number {
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ').trim();
  if (isInputError(e)) {
    io.err(`fusecert: error: ${message}`);
  } else {
    io.err(
      `fusecert: internal error: ${e instanceof Error && e.name !== 'Error' ? `${e.name}: ` : ''}${message} (please report this with the command line at ${ISSUES}; FUSECERT_DEBUG=1 prints the stack)`,
    );
    if (io.env.FUSECERT_DEBUG === '1' && e instanceof Error && e.stack) io.err(e.stack);
  }
  return 2;
}

/** `fusecert ARGV...`: the exit code; output goes through io. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (isCommand(cmd)) {
      switch (cmd) {
        case 'run':
          return await cmdRun(rest, io);
        case 'doctor':
          return await cmdDoctor(rest, io);
        case 'clauses':
          return cmdClauses(rest, io);
        case 'compare':
          return cmdCompare(rest, io);
        case 'expect':
          return cmdExpect(rest, io);
        case 'explain':
          return cmdExplain(rest, io);
        case 'kernel': {
          const k = parseCommand('kernel', rest);
          if (k.help) return help(io, 'kernel');
          if (io.dryRun) return 0;
          return await cmdKernel(k.positionals, io);
        }
        case 'build-ptfs':
          if (parseCommand('build-ptfs', rest).help) return help(io, 'build-ptfs');
          if (io.dryRun) return 0;
          io.out(`built: ${await buildPtfs()}`);
          io.out(`built: ${await buildTracer()}`);
          return 0;
      }
    }
    switch (cmd) {
      case '--version':
        io.out(VERSION);
        return 0;
      case '-h':
      case '--help':
        io.out(usage(VERSION));
        return 0;
      case 'help':
        if (rest.length === 0) {
          io.out(usage(VERSION));
          return 0;
        }
        if (rest.length === 1 && isCommand(rest[0])) return help(io, rest[0]);
        throw new UsageError(`help ${rest.map(q).join(' ')}: expected one command (${COMMAND_NAMES.join(', ')})`);
      case undefined:
        throw new UsageError(`no command given; expected one of ${COMMAND_NAMES.join(', ')} (fusecert --help)`);
      default:
        throw new UsageError(`unknown command ${q(cmd)}; expected one of ${COMMAND_NAMES.join(', ')} (fusecert --help)`);
    }
  } catch (e) {
    return reportError(e, io);
  }
}
