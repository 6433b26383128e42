import { parseArgs } from 'node:util';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { CLAUSES } from '../catalogue/index.ts';
import { loadServer, ManifestError, type ServerSpec } from '../manifest/index.ts';
import { probe, fatalProblems, formatChecks } from '../platform/index.ts';
import { sweep } from '../mount/index.ts';
import { runServer, resolveReference, suiteFiles, childPids, active, sweepDeadRuns, EnvironmentError, VERSION, type RunOptions } from './run.ts';
import { writeComparison } from './compare.ts';

const USAGE = `fusecert ${VERSION} — compliance tests for passthrough-capable FUSE servers

usage:
  fusecert run --server PATH[@variant] [--server ...] [--only ID ...] [--family FAM ...]
               [--jobs N] [--strict] [--junit PATH] [--out DIR] [--seed N] [--shuffle]
               [--fsx-runs N] [--deadline MS]
  fusecert compare RESULTS.json ... [-o PATH.html|PATH.md]
  fusecert clauses [--json]
  fusecert doctor

exit codes: 0 every MUST clause passes or is expected, 1 failures, 2 environment or input errors`;

const list = (v: string[] | undefined) => (v ?? []).flatMap((s) => s.split(/[,\s]+/)).filter(Boolean);

async function cmdRun(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string', multiple: true },
      only: { type: 'string', multiple: true },
      family: { type: 'string', multiple: true },
      jobs: { type: 'string', default: '2' },
      strict: { type: 'boolean', default: false },
      junit: { type: 'string' },
      out: { type: 'string', default: 'reports' },
      seed: { type: 'string' },
      shuffle: { type: 'boolean', default: false },
      'fsx-runs': { type: 'string', default: '40' },
      deadline: { type: 'string', default: '30000' },
      quiet: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  const servers = values.server ?? [];
  if (servers.length === 0) throw new EnvironmentError('--server PATH is required (e.g. --server servers/ptfs/manifest.json)');
  const num = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new EnvironmentError(`--${name} ${v}: expected a whole number >= ${min}`);
    return n;
  };
  const opts: RunOptions = {
    only: list(values.only),
    families: list(values.family),
    jobs: num('jobs', values.jobs, 1),
    strict: values.strict!,
    seed: values.seed !== undefined ? num('seed', values.seed, 0) : Math.floor(Math.random() * 2 ** 31),
    shuffle: values.shuffle!,
    fsxRuns: num('fsx-runs', values['fsx-runs'], 1),
    deadlineMs: num('deadline', values.deadline, 1000),
    outDir: path.resolve(values.out!),
    junit: values.junit ? path.resolve(values.junit) : null,
    quiet: values.quiet!,
  };
  const specs: ServerSpec[] = servers.map((s) => loadServer(s));
  const names = specs.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new EnvironmentError(`two --server arguments name the same server (${names.join(', ')})`);

  suiteFiles(opts); // validates --only/--family before anything mounts
  const platform = await probe();
  const fatal = fatalProblems(platform);
  if (fatal.length) throw new EnvironmentError(fatal.map((c) => `${c.name}: ${c.value}: ${c.fix}`).join('; '));
  const reference = resolveReference();
  for (const l of sweepDeadRuns()) console.error(`fusecert: ${l}`);

  let code = 0;
  const files: string[] = [];
  for (const spec of specs) {
    const out = specs.length > 1 ? path.join(opts.outDir, spec.name) : opts.outDir;
    const junit = opts.junit && specs.length > 1 ? opts.junit.replace(/(\.xml)?$/, `-${spec.name}.xml`) : opts.junit;
    console.log(`fusecert ${VERSION}: certifying ${spec.name} (${spec.file}) on Linux ${platform.kernel}, seed ${opts.seed}`);
    const res = await runServer(spec, reference, platform, { ...opts, junit }, out);
    files.push(path.join(out, 'results.json'));
    code = Math.max(code, res.summary.exitCode);
    console.log(`reports: ${path.relative(process.cwd(), out) || '.'}/results.json, ${path.relative(process.cwd(), junit ?? path.join(out, 'junit.xml'))}`);
  }
  if (specs.length > 1) {
    for (const ext of ['html', 'md']) {
      const target = path.join(opts.outDir, `compare.${ext}`);
      writeComparison(files, target);
      console.log(`comparison: ${path.relative(process.cwd(), target)}`);
    }
  }
  return code;
}

async function cmdDoctor(): Promise<number> {
  const p = await probe();
  console.log(`fusecert ${VERSION} doctor\n`);
  console.log(formatChecks(p));
  const { sweepStaleInstances } = await import('../evidence/index.ts');
  const swept = sweepStaleInstances();
  if (swept.length) console.log(`\nremoved tracefs instances of dead fusecert runs: ${swept.join(', ')}`);
  const missing = p.checks.filter((c) => !c.ok);
  console.log(missing.length ? `\n${missing.length} problem(s): passthrough and evidence clauses that need them will be skipped with the reason.` : '\nready: every clause can run.');
  return fatalProblems(p).length ? 2 : 0;
}

function cmdClauses(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } } });
  if (values.json) {
    console.log(JSON.stringify(CLAUSES, null, 2));
    return 0;
  }
  const w = Math.max(...CLAUSES.map((c) => c.title.length));
  for (const c of CLAUSES) console.log(`${c.id.padEnd(8)} ${c.level.padEnd(6)} ${c.title.padEnd(w)}  [${c.observes}]`);
  return 0;
}

function cmdCompare(argv: string[]): number {
  const { values, positionals } = parseArgs({ args: argv, options: { o: { type: 'string', short: 'o', default: 'reports/compare.html' } }, allowPositionals: true });
  if (positionals.length === 0) throw new EnvironmentError('compare needs one or more results.json files');
  writeComparison(positionals, path.resolve(values.o!));
  console.log(`comparison: ${values.o}`);
  return 0;
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'run':
      return cmdRun(rest);
    case 'doctor':
      return cmdDoctor();
    case 'clauses':
      return cmdClauses(rest);
    case 'compare':
      return cmdCompare(rest);
    case '--version':
      console.log(VERSION);
      return 0;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new EnvironmentError(`unknown command ${cmd} (run, compare, clauses, doctor)`);
  }
}

// A reader that goes away (`fusecert clauses | head`) must not crash a run mid-way and leave its
// mounts: the rest of the output is dropped and the command ends as it would have.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    console.error(`\nfusecert: ${sig}: cleaning up mounts, servers and tracefs instances of this run`);
    // The guard leaves the run's cgroup, aborts the run's connections, kills the cgroup (workers,
    // servers, whatever they started), unmounts and removes the state dir (src/mount/guardian.ts).
    const guard = active.guard;
    if (guard) for (const l of guard.abort()) console.error(`  ${l}`);
    else {
      for (const p of childPids()) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (active.stateDir) rmSync(active.stateDir, { recursive: true, force: true }); // made, not yet guarded
    }
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ManifestError || e instanceof EnvironmentError || (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      console.error(`fusecert: error: ${(e as Error).message}`);
      process.exitCode = 2;
    } else {
      console.error(`fusecert: internal error: ${(e as Error).stack ?? e}`);
      process.exitCode = 2;
    }
  },
);
