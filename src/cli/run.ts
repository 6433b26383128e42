import { handOff, received } from '../runenv/index.ts';
import { accessSync, constants, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { FAMILIES, isClauseId, type Family } from '../catalogue/index.ts';
import { loadServer, needsIoUring, type ServerSpec } from '../manifest/index.ts';
import { NO_FUSE_IO_URING, type Platform } from '../platform/index.ts';
import {
  useRegistry,
  useCleanupTrace,
  traceCleanup,
  ServerInstance,
  makeWorkspace,
  fuseMountAt,
  abortConnection,
  alive,
  pidsWhere,
  register,
  type Resource,
} from '../mount/index.ts';
import { holdUring, releaseUring, selfHolder, sweepUringHolds, UringParamError } from '../mount/uring-param.ts';
import { RunGuard, sweepRun, cgroupOf, cgroup2Root, fusecertDirs, type RunState } from '../mount/guardian.ts';
import { sweepStaleInstances } from '../evidence/index.ts';
import type { RunContext } from '../harness/context.ts';
import { couldNotRun, factsDirOf, type FactResult } from '../harness/platform-facts.ts';
import {
  ClauseCollector,
  applyExpectations,
  applyBaseline,
  summarise,
  platformSummary,
  writeJUnit,
  summaryTable,
  DEFAULT_TOLERANCE,
  type Results,
} from '../report/index.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

export interface RunOptions {
  only: string[];
  families: string[];
  jobs: number;
  strict: boolean;
  seed: number;
  shuffle: boolean;
  fsxRuns: number;
  deadlineMs: number;
  outDir: string;
  junit: string | null;
  quiet: boolean;
  /** An earlier run of this server (--baseline): the run then fails only on what got worse. */
  baseline?: { results: Results; file: string } | null;
  /** Relative drop of readRatio/writeRatio tolerated against the baseline (--baseline-tolerance). */
  baselineTolerance?: number;
}

export class EnvironmentError extends Error {}

/** The run in progress, for the signal handler (vitest may replace process.env). */
export const active: { stateDir: string | null; guard: RunGuard | null } = { stateDir: null, guard: null };

/** The suite files a selection needs: from --family, or the families of the --only ids. */
export function suiteFiles(opts: Pick<RunOptions, 'only' | 'families'>): string[] {
  let fams = Object.keys(FAMILIES) as Family[];
  if (opts.families.length) {
    for (const f of opts.families) if (!(f.toUpperCase() in FAMILIES)) throw new EnvironmentError(`--family ${f}: unknown family (known: ${fams.join(', ')})`);
    fams = opts.families.map((f) => f.toUpperCase() as Family);
  }
  if (opts.only.length) {
    for (const id of opts.only) {
      if (!isClauseId(id)) throw new EnvironmentError(`--only ${id}: unknown clause id (see \`fusecert clauses\`)`);
    }
    const onlyFams = new Set(opts.only.map((id) => id.split('-')[0]));
    fams = fams.filter((f) => onlyFams.has(f));
  }
  return fams.map((f) => path.join(ROOT, 'suites', `${FAMILIES[f].suite}.test.ts`)).filter((f) => existsSync(f));
}

async function serverVersion(spec: ServerSpec): Promise<string> {
  const v = spec.versionArgv;
  if (!v) return 'unknown';
  const r = await execa(v[0], v.slice(1), { reject: false, timeout: 5000, all: true, env: spec.manifest.env });
  const line = (r.all ?? '').split('\n').find((l) => l.trim()) ?? '';
  return line.trim().slice(0, 120) || 'unknown';
}

/** Mount once before any clause, so a server that cannot start is one clear error (exit 2). */
async function preflight(spec: ServerSpec): Promise<void> {
  const ws = await makeWorkspace({ tree: null });
  try {
    const s = await ServerInstance.start(spec, ws.source, ws.mountpoint, [], ws.scratch);
    await s.stop();
  } catch (e) {
    throw new EnvironmentError((e as Error).message);
  } finally {
    await ws.dispose();
  }
}

function registeredConnections(stateDir: string): number[] {
  const conns: number[] = [];
  for (const f of existsSync(stateDir) ? readdirSync(stateDir) : []) {
    if (!f.startsWith('mount-')) continue;
    const r = JSON.parse(readFileSync(path.join(stateDir, f), 'utf8')) as Resource;
    if (r.kind === 'mount') {
      const m = fuseMountAt(r.path);
      if (m) conns.push(m.minor);
    }
  }
  return conns;
}

export function childPids(): number[] {
  return pidsWhere((st) => st.ppid === process.pid);
}

export async function runServer(spec: ServerSpec, reference: ServerSpec | null, platform: Platform, opts: RunOptions, outDir: string): Promise<Results> {
  const started = new Date();
  const files = suiteFiles(opts);
  if (files.length === 0) throw new EnvironmentError('no suite matches the selection (--only/--family)');
  // where the run's time went, step by step (results.json `phases`, milliseconds)
  const phases: Record<string, number> = {};
  const timed = async <T>(name: string, step: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await step();
    } finally {
      phases[name] = Math.round(performance.now() - t0);
    }
  };
  const run = await timed('state', openRunState);
  let collector: ClauseCollector;
  let version: string;
  let uring: ReturnType<typeof holdUringForRun> = null;
  try {
    uring = holdUringForRun(spec, platform);
    await timed('preflight', () => preflight(spec));
    version = await timed('version', () => serverVersion(spec));
    run.handContext(runContextFor(spec, reference, platform, opts, outDir));
    carryFacts('in', path.dirname(run.registryDir), spec.name);
    collector = new ClauseCollector(opts.quiet ? () => {} : undefined, files.length, spec.expect);
    const stopWatchdog = startWatchdog(collector, run.registryDir, opts.deadlineMs);
    try {
      await runSuites(files, collector, opts, timed);
    } finally {
      stopWatchdog();
    }
    process.exitCode = 0; // vitest sets it on a failing test; the run's exit code is ours to decide
  } catch (e) {
    run.close();
    throw e;
  }
  carryFacts('out', path.dirname(run.registryDir), spec.name);
  if (uring) for (const l of uring.release()) traceCleanup(`runner: ${l}`);
  const left = await timed('cleanup', () => run.close());
  for (const l of left) collector.errors.push(`left behind by a suite and cleaned up: ${l}`);
  const results = assembleResults(spec, version, platform, opts, started, collector, phases);
  writeReports(results, outDir, opts);
  return results;
}

/**
 * A server that claims the io_uring transport (itself or, certifying the whole manifest, one of its
 * variants) gets the fuse module's enable_uring on for this run: a machine-wide hold
 * (src/mount/uring-param.ts) registered in the run's registry before it is taken, so every sweep of
 * the run (its end, SIGINT/SIGTERM, the guardian after a SIGKILL, a later run's dead-run sweep)
 * releases it; the last holder restores the value. On a kernel without the parameter a variant's
 * clauses skip as platform (harness/clause.ts); the server's own claim was refused in cmdRun.
 */
function holdUringForRun(spec: ServerSpec, platform: Platform): { release(): string[] } | null {
  if (!needsIoUring(spec) || !platform.fuseIoUring) return null;
  const me = selfHolder();
  const forget = register({ kind: 'uring-hold', pid: me.pid, start: me.start });
  try {
    const h = holdUring(me);
    for (const l of h.log) traceCleanup(`runner: ${l}`);
    traceCleanup(`runner: enable_uring held (was ${h.original}${h.changed ? ', set to Y' : ''})`);
  } catch (e) {
    forget();
    releaseUring(me);
    throw e instanceof UringParamError ? new EnvironmentError(`${spec.name} claims transport io_uring: ${e.message}`) : e;
  }
  return {
    release() {
      const log = releaseUring(me);
      forget();
      return log;
    },
  };
}

/** The io_uring claim of the server itself cannot be met on this kernel: an environment error (exit 2) naming the fix. */
export function checkTransport(spec: ServerSpec, platform: Platform): void {
  if (spec.claims.transport === 'io_uring' && !platform.fuseIoUring)
    throw new EnvironmentError(
      `${spec.name} claims transport io_uring (${path.relative(process.cwd(), spec.file) || spec.file}), but ${NO_FUSE_IO_URING}, or certify the server's /dev/fuse transport (a variant without claims.transport io_uring)`,
    );
}

/**
 * Platform facts (PLT-001..009, checked with the reference server on fresh mounts) of the earlier
 * servers of this invocation: the kernel and the reference server are the same for all of them,
 * so a later server's clauses read them instead of mounting the reference again (inside a UML
 * guest each check costs seconds). A PLT clause still checks its fact afresh. `out` keeps what a
 * run's workers recorded in its state dir (harness/platform-facts.ts), `in` hands it to the next.
 */
const carriedFacts = new Map<string, string>();
function carryFacts(way: 'in' | 'out', stateDir: string, server: string): void {
  const dir = factsDirOf(stateDir);
  try {
    if (way === 'out') {
      for (const f of existsSync(dir) ? readdirSync(dir) : []) {
        if (!/^PLT-\d+\.json$/.test(f)) continue;
        const fact = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as FactResult;
        if (!couldNotRun(fact)) carriedFacts.set(f, JSON.stringify({ ...fact, from: fact.from ?? server }));
      }
    } else if (carriedFacts.size) {
      mkdirSync(dir, { recursive: true });
      for (const [f, text] of carriedFacts) writeFileSync(path.join(dir, f), text);
    }
  } catch {
    /* a cache: the clauses check the facts themselves */
  }
}

/**
 * The run's state dir, before its first mount (the preflight's), so that mount is in the registry
 * an interrupt sweeps. The guard (src/mount/guardian.ts) puts this process in the run's cgroup and
 * starts the guardian that sweeps the run if this process is killed outright. This process
 * registers what it creates and hands the registry, the context and its pid to the workers
 * (src/runenv). Everything the run creates lives under the state dir (workspaces, vitest's temp
 * files: TMPDIR points inside it), so what an interrupted run leaves is found under one
 * directory. close() undoes all of it and returns what the guard had to clean up.
 */
export async function openRunState(): Promise<{ registryDir: string; handContext(ctx: RunContext): void; close(): string[] }> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-run-'));
  useCleanupTrace(received().cleanupLog);
  traceCleanup(`runner: state dir ${stateDir}`);
  active.stateDir = stateDir;
  const guard = RunGuard.create(stateDir);
  active.guard = guard;
  const registryDir = path.join(stateDir, 'resources');
  mkdirSync(registryDir);
  await guard.startGuardian(path.join(ROOT, 'bin/fusecert-guardian.mjs'));
  guard.enterCgroup();
  traceCleanup(`runner: guardian ${guard.state.guardian?.pid ?? 'none'}, cgroup ${guard.state.cgroup ?? 'none'}`);
  useRegistry(registryDir);
  const undoHandoff = handOff({ registryDir, runPid: process.pid });
  const savedTmp = process.env.TMPDIR;
  mkdirSync(path.join(stateDir, 'tmp'));
  process.env.TMPDIR = path.join(stateDir, 'tmp');
  process.env.UV_THREADPOOL_SIZE = '32'; // a hung FUSE call holds a libuv thread until the abort
  let undoContext = () => {};
  let closed: string[] | null = null;
  return {
    registryDir,
    handContext(ctx) {
      const file = path.join(stateDir, 'context.json');
      writeFileSync(file, JSON.stringify(ctx));
      undoContext = handOff({ contextFile: file });
    },
    close() {
      if (closed) return closed;
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
      closed = guard.finish();
      active.stateDir = null;
      active.guard = null;
      useRegistry(null);
      undoHandoff();
      undoContext();
      return closed;
    },
  };
}

/** What every worker reads (harness/context.ts): the server, the options, the replay command. */
function runContextFor(spec: ServerSpec, reference: ServerSpec | null, platform: Platform, opts: RunOptions, outDir: string): RunContext {
  const cli = path.relative(process.cwd(), path.join(ROOT, 'bin/fusecert.mjs')) || 'bin/fusecert.mjs';
  return {
    server: spec,
    reference,
    platform,
    only: opts.only,
    strict: opts.strict,
    seed: opts.seed,
    fsxRuns: opts.fsxRuns,
    deadlineMs: opts.deadlineMs,
    outDir,
    // inside a UML guest the replay boots the same guest kernel
    replay: `node ${cli} run${received().guest ? ` --kernel uml:${received().guest!.kernel}` : ''} --server ${spec.file}${spec.variant ? `@${spec.variant}` : ''} --seed ${opts.seed} --only {id}`,
  };
}

/**
 * No clause result for too long (longer than any running clause's deadline allows) means a worker
 * is stuck beyond the harness deadline (a synchronous call into a hung server): first abort this
 * run's connections, then kill the workers.
 */
function startWatchdog(collector: ClauseCollector, registryDir: string, deadlineMs: number): () => void {
  let stage = 0;
  const watchdog = setInterval(() => {
    const idle = Date.now() - collector.lastProgress;
    // beyond the longest deadline of the clauses running now (vitest's timeout is the deadline + 30 s)
    const stall = collector.allowedIdleMs(deadlineMs * 2) + 60_000;
    if (idle > stall && stage === 0) {
      stage = 1;
      for (const c of registeredConnections(registryDir)) abortConnection(c);
      collector.errors.push(`watchdog: no progress for ${Math.round(idle / 1000)} s: aborted this run's FUSE connections`);
    } else if (idle > stall + 30_000 && stage === 1) {
      stage = 2;
      for (const p of childPids()) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      collector.errors.push('watchdog: workers still stuck after the abort: killed them');
    } else if (idle < stall) stage = 0;
  }, 2000);
  return () => clearInterval(watchdog);
}

/**
 * The suite files in vitest, in two batches: the suites that measure time (PRF) run after the
 * others, one at a time, since a throughput ratio taken while another suite file loads the
 * machine's cores measures that suite, not the server. Timing results taken while another
 * fusecert run was active say so.
 */
async function runSuites(
  files: string[],
  collector: ClauseCollector,
  opts: RunOptions,
  timed: <T>(name: string, step: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const { startVitest } = await import('vitest/node'); // only `run` needs it (bin/fusecert.mjs preloads it)
  const alone = new Set(
    Object.values(FAMILIES)
      .filter((f) => f.alone)
      .map((f) => `${f.suite}.test.ts`),
  );
  const batches = [files.filter((f) => !alone.has(path.basename(f))), files.filter((f) => alone.has(path.basename(f)))];
  const concurrent = new Map<number, number>(); // other runs seen while a timing suite ran: pid -> samples
  let samples = 0;
  for (const batch of batches.filter((b) => b.length > 0)) {
    const timing = alone.has(path.basename(batch[0]));
    const jobs = timing ? 1 : opts.jobs;
    const sample = () => {
      samples++;
      for (const p of otherRuns()) concurrent.set(p, (concurrent.get(p) ?? 0) + 1);
    };
    if (timing) sample();
    const sampler = timing ? setInterval(sample, 1000) : null;
    try {
      await timed(timing ? 'suites (timing, alone)' : 'suites', async () => {
        const vitest = await startVitest(
          'test',
          [],
          {
            config: false,
            root: ROOT,
            watch: false,
            include: batch.map((f) => path.relative(ROOT, f)),
            setupFiles: [path.join(ROOT, 'src/harness/setup.ts')],
            reporters: [collector],
            pool: 'forks',
            // `jobs` workers for all the files, not one fresh worker per file: a worker's start-up
            // (node, vitest, the harness) was ~10 % of a certification's CPU. The files share no
            // state but the harness's memos (platform facts, the run context), which are the run's.
            isolate: false,
            maxWorkers: jobs,
            fileParallelism: jobs > 1,
            sequence: { shuffle: opts.shuffle, seed: opts.seed },
            testTimeout: opts.deadlineMs + 30_000,
            hookTimeout: 120_000,
            teardownTimeout: 60_000,
            passWithNoTests: true,
            ...moduleCache(),
          },
          { logLevel: 'error' },
        );
        await vitest.close();
      });
    } finally {
      if (sampler) {
        clearInterval(sampler);
        sample();
      }
    }
  }
  if (concurrent.size) {
    const who = [...concurrent].map(([p, n]) => `pid ${p} in ${n} of ${samples} samples`).join(', ');
    for (const r of collector.results) {
      if (!alone.has(`${FAMILIES[r.family as Family]?.suite}.test.ts`)) continue;
      r.evidence.concurrentRuns = who;
      r.reason = `${r.reason ? `${r.reason}; ` : ''}another fusecert run was active during these measurements (${who})`;
    }
  }
}

/**
 * vitest's module cache on disk: the suites and the harness are transformed once, not in every
 * worker of every run (about 0.35 s of CPU per run here). Only in a checkout or an install whose
 * node_modules is writable; elsewhere the workers transform as before.
 */
function moduleCache(): { experimental?: { fsModuleCache: boolean; fsModuleCachePath: string } } {
  const dir = path.join(ROOT, 'node_modules');
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return {};
  }
  return { experimental: { fsModuleCache: true, fsModuleCachePath: path.join(dir, '.cache/fusecert-vitest') } };
}

/** results.json's content: the collected results with the manifest's expectations and the baseline applied. */
function assembleResults(
  spec: ServerSpec,
  version: string,
  platform: Platform,
  opts: RunOptions,
  started: Date,
  collector: ClauseCollector,
  phases: Record<string, number>,
): Results {
  const clauses = applyExpectations(collector.results, spec.expect);
  // reply evidence is an environment requirement like tracefs: --strict (CI) does not certify without it
  if (opts.strict && !platform.replyEvidence && platform.root)
    collector.errors.push(
      `reply evidence unavailable under --strict: ${platform.replyEvidenceReason ?? 'unknown'} (failures could not name the server's replies)`,
    );
  const results: Results = {
    tool: 'fusecert',
    version: VERSION,
    started: started.toISOString(),
    durationMs: Date.now() - started.getTime(),
    phases,
    platform: platformSummary(platform),
    server: { name: spec.name, version, manifest: spec.file, claims: spec.claims },
    options: { only: opts.only, families: opts.families, strict: opts.strict, seed: opts.seed, jobs: opts.jobs, shuffle: opts.shuffle },
    clauses,
    errors: collector.errors,
    summary: summarise(clauses, opts.strict, collector.errors),
  };
  if (opts.baseline)
    applyBaseline(results, opts.baseline.results, { strict: opts.strict, tolerance: opts.baselineTolerance ?? DEFAULT_TOLERANCE, file: opts.baseline.file });
  return results;
}

function writeReports(results: Results, outDir: string, opts: RunOptions): void {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2));
  writeJUnit([results], opts.junit ?? path.join(outDir, 'junit.xml'));
  if (!opts.quiet) process.stdout.write(`\n${summaryTable(results, opts.strict)}\n`);
}

/**
 * What runs killed outright left behind when their guardian could not sweep them (the guardian
 * was killed too, the machine's session ended): a state dir whose runner and guardian are both
 * dead is swept like an interrupted run (its cgroup killed, its mounts and processes, its
 * tracefs instances); cgroups `fusecert-<pid>-*` beside ours whose runner is dead are removed
 * too. A run whose runner or guardian lives is never touched. Returns what was cleaned.
 */
export function sweepDeadRuns(): string[] {
  const log: string[] = [];
  const tmp = os.tmpdir();
  for (const d of readdirSync(tmp)) {
    if (!d.startsWith('fusecert-run-')) continue;
    const dir = path.join(tmp, d);
    let owner: RunState;
    try {
      owner = JSON.parse(readFileSync(path.join(dir, 'owner.json'), 'utf8')) as RunState;
      if (alive(owner.pid, owner.start)) continue;
      if (owner.guardian && alive(owner.guardian.pid, owner.guardian.start)) continue; // it is sweeping right now
    } catch {
      continue; // not a run dir of ours, or one being created right now
    }
    log.push(...sweepRun({ ...owner, stateDir: dir }, { runnerGone: true }));
    log.push(`removed the state of a dead run: ${dir}`);
  }
  // A cgroup outlives its state dir only if the sweep above was itself interrupted.
  const home = cgroupOf('self');
  for (const d of home && existsSync(home) ? readdirSync(home) : []) {
    const m = /^fusecert-(\d+)-/.exec(d);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    const cg = path.join(home!, d);
    if (existsSync(path.join(tmp, `fusecert-run-${d.slice(m[0].length)}`))) continue; // its state dir was judged above
    log.push(
      ...sweepRun(
        { stateDir: path.join(tmp, `fusecert-run-${d.slice(m[0].length)}`), pid: Number(m[1]), start: '', cgroup: cg, homeCgroup: home },
        { runnerGone: false },
      ),
    );
    log.push(`removed the cgroup of a dead run: ${cg}`);
  }
  for (const i of sweepStaleInstances()) log.push(`removed tracefs instance of a dead run: ${i}`);
  // holds of runs whose state dir is gone (a sweep cut short): the last one restores enable_uring
  try {
    log.push(...sweepUringHolds());
  } catch (e) {
    log.push(`could not sweep the enable_uring holds: ${(e as Error).message}`);
  }
  return log;
}

/**
 * Runner pids of the other fusecert runs alive on this machine, whatever their TMPDIR: each run
 * names its cgroup and its tracefs instances fusecert-<runner pid>-*.
 */
export function otherRuns(): number[] {
  const found = new Set<number>();
  const cg = cgroup2Root();
  for (const d of [...(cg ? fusecertDirs(cg, 5) : []), ...fusecertDirs('/sys/kernel/tracing/instances', 0)]) {
    const m = /^fusecert-(\d+)-/.exec(path.basename(d));
    if (m) found.add(Number(m[1]));
  }
  found.delete(process.pid);
  return [...found].filter((p) => alive(p));
}

export function resolveReference(): ServerSpec | null {
  try {
    return loadServer(path.join(ROOT, 'servers/ptfs/manifest.json'));
  } catch {
    return null;
  }
}
