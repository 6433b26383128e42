// Start a real `fusecert run`, kill it with a signal at a chosen moment, and count what it left
// on the machine every 50 ms until nothing is left or the time is up; no other run is started.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { leftoversOf } from './leftovers.ts';
import { allPids, procStat } from '../mount/proc.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'bin/fusecert.mjs');
const INSTANCES = '/sys/kernel/tracing/instances';

export type Phase = 'preflight' | 'clause' | 'mounted' | 'traced' | 'any';

export interface KilledRun {
  phase: Phase;
  signal: NodeJS.Signals;
  /** ms from start to the signal */
  killedAtMs: number;
  /** resources of the run that existed at the moment of the signal */
  before: string[];
  /** what was still there at the end of the grace time (should be nothing) */
  left: string[];
  /** ms from the signal until nothing was left (null if something stayed) */
  cleanMs: number | null;
  /** the run's own output at the signal (for a failure message) */
  output: string;
  /** its output after the signal (the interrupt handler's lines) */
  after: string;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** the run's TMPDIR (removed when nothing was left in it) */
  tmp: string;
  /** with `trace`: the run's cleanup trace (src/mount/trace.ts), in `tmp`, kept when something was left */
  traceFile: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stateDirs(tmp: string): string[] {
  try {
    return readdirSync(tmp)
      .filter((d) => d.startsWith('fusecert-run-'))
      .map((d) => path.join(tmp, d));
  } catch {
    return [];
  }
}

function fuseMountsUnder(dir: string): number {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => {
      const f = l.split(' ');
      return f[4]?.startsWith(dir + '/') && /^fuse/.test(f[f.indexOf('-') + 1] ?? '');
    }).length;
}

/**
 * `phase` picks the moment: 'preflight' as soon as the preflight's FUSE mount exists (before the
 * run context is written), 'clause' `afterMs` after the first clause result, 'mounted' `afterMs`
 * after the first mount of the suites appeared (with --family PRF: during PRF), 'traced' the same
 * once the run's tracefs instances exist too (what a loaded machine may not have reached
 * `afterMs` after the mount), 'any' at `afterMs` from start.
 */
export async function killRun(
  args: string[],
  opts: {
    phase: Phase;
    signal: NodeJS.Signals;
    afterMs?: number;
    graceMs?: number;
    timeoutMs?: number;
    alsoGuardian?: boolean;
    /** SIGKILL every process below the runner too (suite workers, servers) before the signal: no
     *  exit hook of any of them runs, as when a whole job's processes are killed at once */
    wholeTree?: boolean;
    trace?: boolean;
    /** once the phase moment is reached, wait on until one of the run's live resources matches (a
     *  clause's server between two clauses is not running: a kill there would test less) */
    live?: RegExp;
  },
): Promise<KilledRun> {
  // the same layout as util.ts fusecert(): TMPDIR is tmp/tmp, so a later fusecert({ tmp }) sees this run
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-kill-'));
  const work = path.join(tmp, 'tmp');
  mkdirSync(work);
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TMPDIR: work };
  for (const k of [
    'FUSECERT_STATE_DIR',
    'FUSECERT_CONTEXT',
    'FUSECERT_RUN_PID',
    'NODE_OPTIONS',
    'VITEST',
    'VITEST_WORKER_ID',
    'VITEST_POOL_ID',
    'FUSECERT_CLEANUP_LOG',
  ])
    delete env[k];
  const traceFile = opts.trace ? path.join(tmp, 'cleanup.log') : null;
  if (traceFile) env.FUSECERT_CLEANUP_LOG = traceFile;
  const child = spawn(process.execPath, [CLI, ...args, '--out', path.join(tmp, 'out')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let firstResultAt = 0;
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
    if (!firstResultAt && /\[\s*\d+\/\d+\]/.test(output)) firstResultAt = Date.now();
  });
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
  let done = false;
  void exited.then(() => (done = true));
  const t0 = Date.now();
  const deadline = t0 + (opts.timeoutMs ?? 120_000);
  const after = opts.afterMs ?? 0;
  let prfSince = 0;
  let reached = false;
  // the resources at the kill: with `live`, the very snapshot that matched (a second look would
  // come a scan later, when a clause's short-lived server may already have stopped)
  let matched: string[] | null = null;
  for (;;) {
    if (done) {
      if (leftoversOf(work, child.pid!).length === 0) rmSync(tmp, { recursive: true, force: true });
      throw new Error(`the run ended before the ${opts.phase} moment: ${output.slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`no ${opts.phase} moment within ${opts.timeoutMs ?? 120_000} ms: ${output.slice(-2000)}`);
    }
    if (reached) {
      const now = leftoversOf(work, child.pid!);
      if (now.some((l) => opts.live!.test(l))) {
        matched = now;
        break;
      }
      await sleep(20); // leftoversOf reads every process's environment
      continue;
    }
    const dirs = stateDirs(work);
    const dir = dirs[0];
    let moment = false;
    if (opts.phase === 'any' && Date.now() - t0 >= after) moment = true;
    if (opts.phase === 'preflight' && dir && !existsSync(path.join(dir, 'context.json')) && fuseMountsUnder(dir) > 0) moment = true;
    if (opts.phase === 'clause' && firstResultAt && Date.now() - firstResultAt >= after) moment = true;
    const traced = () => existsSync(INSTANCES) && readdirSync(INSTANCES).some((i) => i.startsWith(`fusecert-${child.pid}-`));
    if (
      (opts.phase === 'mounted' || opts.phase === 'traced') &&
      dir &&
      existsSync(path.join(dir, 'context.json')) &&
      fuseMountsUnder(dir) > 0 &&
      (opts.phase === 'mounted' || traced())
    ) {
      prfSince ||= Date.now();
      if (Date.now() - prfSince >= after) moment = true;
    }
    if (moment && !opts.live) break;
    if (moment) {
      reached = true;
      continue;
    }
    await sleep(opts.phase === 'preflight' ? 2 : 20);
  }
  const before = matched ?? leftoversOf(work, child.pid!);
  const killedAtMs = Date.now() - t0;
  const atKill = output;
  if (opts.alsoGuardian) {
    // the guardian's pid is in owner.json; killing it first leaves the run to the next one's sweep
    for (const d of stateDirs(work)) {
      const g = (JSON.parse(readFileSync(path.join(d, 'owner.json'), 'utf8')) as { guardian?: { pid: number } }).guardian;
      if (g) process.kill(g.pid, 'SIGKILL');
    }
  }
  if (opts.wholeTree)
    for (let pass = 0; pass < 2; pass++)
      for (const p of descendants(child.pid!))
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* exited since the listing */
        }
  if (traceFile)
    appendFileSync(traceFile, `${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid} killer: ${opts.signal} to ${child.pid}\n`);
  child.kill(opts.signal);
  const tk = Date.now();
  const grace = opts.graceMs ?? 5000;
  let left: string[] = before;
  let cleanMs: number | null = null;
  while (Date.now() - tk < grace) {
    await sleep(50);
    left = leftoversOf(work, child.pid!);
    if (left.length === 0) {
      cleanMs = Date.now() - tk;
      break;
    }
  }
  const [exitCode, exitSignal] = await Promise.race([exited, sleep(1000).then(() => [null, null] as [null, null])]);
  if (left.length === 0) rmSync(tmp, { recursive: true, force: true });
  return {
    phase: opts.phase,
    signal: opts.signal,
    killedAtMs,
    before,
    left,
    cleanMs,
    output: atKill,
    after: output.slice(atKill.length),
    exitCode,
    exitSignal,
    tmp,
    traceFile,
  };
}

/** Every live process below `root`, read from /proc. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of allPids()) {
    const st = procStat(p);
    if (st) children.set(st.ppid, [...(children.get(st.ppid) ?? []), p]);
  }
  const out: number[] = [];
  const todo = [...(children.get(root) ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface StartedRun {
  pid: number;
  tmp: string;
  /** exit code, output, results.json (null if none) and what was left 5 s after the exit at most */
  done: Promise<{
    exitCode: number | null;
    output: string;
    results: { clauses: { id: string; level: string; status: string; reason: string; evidence: Record<string, unknown> }[] } | null;
    left: string[];
  }>;
}

/** Start a real run in a TMPDIR of its own; `done` also counts what it left once it has exited. */
export function startRun(args: string[]): StartedRun {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-conc-'));
  const work = path.join(tmp, 'tmp');
  mkdirSync(work);
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TMPDIR: work };
  for (const k of ['FUSECERT_STATE_DIR', 'FUSECERT_CONTEXT', 'FUSECERT_RUN_PID', 'NODE_OPTIONS', 'VITEST', 'VITEST_WORKER_ID', 'VITEST_POOL_ID']) delete env[k];
  const out = path.join(tmp, 'out');
  const child = spawn(process.execPath, [CLI, ...args, '--out', out], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<number | null>((r) => child.on('exit', (c) => r(c))).then(async (exitCode) => {
    let left = leftoversOf(work, child.pid!);
    for (let i = 0; i < 100 && left.length; i++) {
      await sleep(50);
      left = leftoversOf(work, child.pid!);
    }
    const f = path.join(out, 'results.json');
    const results = existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
    if (left.length === 0) rmSync(tmp, { recursive: true, force: true });
    return { exitCode, output, results, left };
  });
  return { pid: child.pid!, tmp, done };
}
