// What survives a SIGKILL of the runner. Each run gets
//   - a cgroup v2 child of the runner's own cgroup, which the runner moves itself into before it
//     starts anything, so every process of the run (servers, daemonized or not, their children,
//     vitest workers, mount(8) helpers) is in it and `cgroup.kill` ends them all at once;
//   - a guardian: a small detached process (own session, outside that cgroup) holding the read
//     end of a pipe from the runner. EOF without a "bye" first means the runner is gone; the
//     guardian then waits for it to be dead and does the same synchronous sweep an interrupted
//     runner does (sweepRun): abort the run's FUSE connections, kill its cgroup and the processes
//     that name its state dir, lazily unmount, remove its tracefs instances, its state dir and
//     its cgroup.
// Where no cgroup can be made (no cgroup2, not root) the run's processes are still found: by
// the FUSECERT_STATE_DIR every process of the run inherits (/proc/PID/environ), by the registry,
// by the process groups of registered servers, and as owners of the run's FUSE connections.
// Nothing here touches what is not the run's own: mounts under its state dir or served by its
// processes, processes in its cgroup or naming its state dir, instances named after its runner.
import { received } from '../runenv/index.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { mounts, mountsUnder, abortConnection, type MountEntry } from './mountinfo.ts';
import { sweep, alive, processStart, removeInstance, type Resource } from './registry.ts';
import { connectionsHeldBy } from './fuse-fds.ts';
import { allPids, procStat } from './proc.ts';
import { traceCleanup, useCleanupTrace } from './trace.ts';

/** What identifies one run's resources; stored in the state dir's owner.json. */
export interface RunState {
  stateDir: string;
  /** the runner: `pid` plus its start time names exactly one process */
  pid: number;
  start: string;
  /** the run's cgroup directory (absolute), or null with the reason in `cgroupError` */
  cgroup: string | null;
  cgroupError?: string;
  /** the cgroup the runner came from and returns to */
  homeCgroup: string | null;
  guardian?: { pid: number; start: string } | null;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export function resourcesDir(stateDir: string): string {
  return path.join(stateDir, 'resources');
}

/** The cgroup2 mount (e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified on a hybrid host), or null. */
export function cgroup2Root(): string | null {
  return mounts().find((m) => m.fstype === 'cgroup2')?.mountpoint ?? null;
}

/** Directories named fusecert-* (run cgroups, tracefs instances) below `dir`, `depth` levels down at most. */
export function fusecertDirs(dir: string, depth: number): string[] {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    if (e.name.startsWith('fusecert-')) out.push(path.join(dir, e.name));
    if (depth > 0) out.push(...fusecertDirs(path.join(dir, e.name), depth - 1)); // a run started inside another's cgroup nests
  }
  return out;
}

/** The cgroup2 directory of a process ("0::/path" in /proc/PID/cgroup), or null. */
export function cgroupOf(pid: number | 'self'): string | null {
  const root = cgroup2Root();
  if (!root) return null;
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line ? path.join(root, line.slice(3)) : null;
  } catch {
    return null;
  }
}

/** A fresh child of the runner's own cgroup, `fusecert-<pid>-<suffix>`; null + reason if none can be made. */
export function createRunCgroup(suffix: string): { cgroup: string | null; home: string | null; error?: string } {
  const home = cgroupOf('self');
  if (!home) return { cgroup: null, home: null, error: 'no cgroup2 hierarchy mounted' };
  const dir = path.join(home, `fusecert-${process.pid}-${suffix}`);
  try {
    mkdirSync(dir);
    if (!existsSync(path.join(dir, 'cgroup.kill'))) {
      rmdirSync(dir);
      return { cgroup: null, home, error: 'cgroup.kill missing (kernel < 5.14)' };
    }
    return { cgroup: dir, home };
  } catch (e) {
    return { cgroup: null, home, error: `cannot create ${dir}: ${(e as Error).message}` };
  }
}

export function moveToCgroup(dir: string, pid: number): void {
  writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
}

/** Every pid in the cgroup and its descendants. */
export function cgroupProcs(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const l of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* gone */
    }
  };
  walk(dir);
  return out;
}

function cgroupPopulated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/** Remove a cgroup and the sub-cgroups a process of it may have made (deepest first). */
function removeCgroup(dir: string): boolean {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(path.join(dir, e.name));
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * The run's processes: its cgroup (or, without one, whoever inherited its FUSECERT_STATE_DIR),
 * registered processes (pid + start time) and the members of their process groups. Never this
 * process.
 */
export function runProcesses(run: RunState): Set<number> {
  const found = new Set<number>();
  if (run.cgroup) for (const p of cgroupProcs(run.cgroup)) found.add(p);
  const marker = Buffer.from(`\0FUSECERT_STATE_DIR=${resourcesDir(run.stateDir)}\0`);
  const groups = new Set<number>();
  const res = resourcesDir(run.stateDir);
  for (const f of existsSync(res) ? readdirSync(res) : []) {
    try {
      const r = JSON.parse(readFileSync(path.join(res, f), 'utf8')) as Resource;
      if (r.kind === 'process' && alive(r.pid, r.start)) {
        found.add(r.pid);
        groups.add(r.pid); // servers are started detached: their pid is their process group
      }
    } catch {
      /* being written or removed */
    }
  }
  // With a cgroup its member list is the answer; the environment is read only without one:
  // reading /proc/PID/environ takes the target's mmap lock, which a thread faulting on a FUSE
  // mapping holds until the server answers, so it can block the sweep.
  const byEnv = !run.cgroup || !existsSync(run.cgroup);
  for (const p of allPids()) {
    if (found.has(p)) continue;
    const st = procStat(p);
    if (st && groups.has(st.pgrp)) {
      found.add(p);
      continue;
    }
    if (!byEnv) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${p}/environ`)]);
      if (env.includes(marker)) found.add(p);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  found.delete(process.pid);
  return found;
}

const isFuse = (m: MountEntry) => m.fstype === 'fuse' || m.fstype.startsWith('fuse.') || m.fstype === 'fuseblk';

/** The tracefs mount (instances live under it), or the usual path. */
function tracefsRoot(): string {
  return mounts().find((m) => m.fstype === 'tracefs')?.mountpoint ?? '/sys/kernel/tracing';
}

/** Instances named after this runner pid (src/evidence/session.ts: fusecert-<pid>-<hex>[-ioctl]). */
export function instancesOfRunner(pid: number): string[] {
  const dir = path.join(tracefsRoot(), 'instances');
  try {
    return readdirSync(dir)
      .filter((n) => n.startsWith(`fusecert-${pid}-`))
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/**
 * Kill the run's processes until a fresh look finds none alive (3 s at most), so nothing of the
 * run can create a resource once the registry is read: a process forked after one scan (a worker
 * starting a server or a tracer, without a cgroup whose kill is atomic) is found by the next.
 * Connections first: a process blocked in a request to a server that is being killed, or in one
 * the kernel will not interrupt, is released by the abort, and the kill then completes. Returns
 * the FUSE mounts of the run seen on the way (served by its processes, or under its state dir).
 */
function endProcesses(run: RunState, opts: { runnerGone: boolean }, log: string[]): MountEntry[] {
  const ours = new Map<string, MountEntry>();
  const killed = new Set<number>();
  let cgroupKilled = false;
  const until = Date.now() + 3000;
  const populated = () => run.cgroup !== null && existsSync(run.cgroup) && cgroupPopulated(run.cgroup);
  for (let round = 0; ; round++) {
    const procs = runProcesses(run);
    if (!opts.runnerGone) procs.delete(run.pid);
    const live = [...procs].filter((p) => alive(p)); // a zombie waiting for its parent is already dead
    if (round > 0 && live.length === 0 && !populated()) break;
    if (round > 0 && Date.now() >= until) {
      for (const p of live) log.push(`process ${p} did not die within 3 s of SIGKILL (${procStat(p)?.state ?? '?'})`);
      if (populated()) log.push(`cgroup ${run.cgroup} still populated 3 s after cgroup.kill`);
      break;
    }
    const conns = new Set(connectionsHeldBy(live));
    for (const m of mounts()) {
      if (!isFuse(m) || ours.has(m.mountpoint) || !(conns.has(m.minor) || m.mountpoint.startsWith(run.stateDir + '/'))) continue;
      ours.set(m.mountpoint, m);
      abortConnection(m.minor);
    }
    if (populated()) {
      try {
        const n = cgroupProcs(run.cgroup!).filter((p) => p !== process.pid).length;
        writeFileSync(path.join(run.cgroup!, 'cgroup.kill'), '1');
        if (!cgroupKilled) log.push(`killed cgroup ${run.cgroup} (${n} process${n === 1 ? '' : 'es'})`);
        cgroupKilled = true;
      } catch (e) {
        log.push(`could not kill cgroup ${run.cgroup}: ${(e as Error).message}`);
      }
    }
    for (const p of live) {
      try {
        process.kill(p, 'SIGKILL');
        if (!killed.has(p)) log.push(`killed left-over process ${p} (${commOf(p)})`);
        killed.add(p);
      } catch {
        /* gone */
      }
    }
    while (Date.now() < until && (live.some((p) => alive(p)) || populated())) sleepSync(20);
    traceCleanup(() => `sweepRun round ${round}: ${live.length} alive before, ${live.filter((p) => alive(p)).length} after, cgroup populated ${populated()}`);
  }
  return [...ours.values()];
}

/**
 * Remove everything of one run, synchronously (it runs in signal handlers and in the guardian).
 * `runnerGone`: the runner is dead, so every tracefs instance named after its pid is the run's;
 * a live runner may have another run in progress (several --server) and keeps its own instances.
 * Returns what it did, one line each.
 */
export function sweepRun(run: RunState, opts: { runnerGone: boolean }): string[] {
  const log: string[] = [];
  traceCleanup(`sweepRun begin ${run.stateDir} runnerGone=${opts.runnerGone}`);
  const ours = endProcesses(run, opts, log);

  try {
    log.push(...sweep(resourcesDir(run.stateDir)));
  } catch (e) {
    log.push(`could not sweep the registry: ${(e as Error).message}`); // the steps below still run
  }
  // Mounts nobody registered yet (a server killed between mount(2) and its registration) and
  // mounts a server made elsewhere than asked.
  const left = [...ours, ...mountsUnder(run.stateDir)].filter((m, i, a) => a.findIndex((n) => n.mountpoint === m.mountpoint) === i);
  for (const m of left.sort((a, b) => b.mountpoint.length - a.mountpoint.length)) {
    if (!mounts().some((n) => n.mountpoint === m.mountpoint)) continue;
    if (isFuse(m)) abortConnection(m.minor);
    const r = execaSync('umount', ['-l', m.mountpoint], { reject: false });
    log.push(`unmounted ${m.mountpoint}${r.exitCode === 0 ? '' : ` (failed: ${r.stderr.trim()})`}`);
  }
  if (opts.runnerGone) {
    for (const i of instancesOfRunner(run.pid)) {
      try {
        removeInstance(i);
        log.push(`removed tracefs instance ${i}`);
      } catch (e) {
        log.push(`could not remove tracefs instance ${i}: ${(e as Error).message}`);
      }
    }
  }
  if (existsSync(run.stateDir)) {
    if (mountsUnder(run.stateDir).length === 0) rmSync(run.stateDir, { recursive: true, force: true });
    else log.push(`kept ${run.stateDir}: still mounted inside`);
  }
  if (run.cgroup && existsSync(run.cgroup) && !removeCgroup(run.cgroup)) log.push(`could not remove cgroup ${run.cgroup}`);
  traceCleanup(
    () =>
      `sweepRun end; instances of ${run.pid} now: ${
        instancesOfRunner(run.pid)
          .map((i) => path.basename(i))
          .join(' ') || 'none'
      }`,
  );
  return log;
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** The runner's side: its cgroup, its guardian, and the sweep it does itself. */
export class RunGuard {
  private finished = false;
  private constructor(
    readonly state: RunState,
    private guardian: ChildProcess | null,
  ) {}
  get isFinished(): boolean {
    return this.finished;
  }

  /**
   * Guard a run whose state dir exists: make its cgroup and write owner.json. Synchronous, so a
   * signal handler can sweep by this guard from the moment the state dir has one. Then
   * startGuardian() and enterCgroup().
   */
  static create(stateDir: string): RunGuard {
    const state: RunState = { stateDir, pid: process.pid, start: processStart(process.pid), cgroup: null, homeCgroup: null, guardian: null };
    const g = new RunGuard(state, null);
    g.writeOwner(); // first: a state dir without owner.json is one no sweep can attribute
    const cg = createRunCgroup(path.basename(stateDir).replace(/^fusecert-run-/, ''));
    Object.assign(state, { cgroup: cg.cgroup, homeCgroup: cg.home });
    if (cg.error) state.cgroupError = cg.error;
    g.writeOwner();
    return g;
  }

  private writeOwner(): void {
    const f = path.join(this.state.stateDir, 'owner.json');
    writeFileSync(`${f}.new`, JSON.stringify(this.state));
    renameSync(`${f}.new`, f); // never half written for another run's sweepDeadRuns
  }

  /** Start the guardian (from this process, outside the run's cgroup: call before enterCgroup). */
  async startGuardian(entry: string): Promise<void> {
    const guardian = await spawnGuardian(this.state, entry);
    if (!guardian) return;
    if (this.finished) {
      guardian.stdin!.end('bye\n'); // interrupted meanwhile and already swept
      return;
    }
    this.guardian = guardian;
    this.state.guardian = { pid: guardian.pid!, start: processStart(guardian.pid!) };
    this.writeOwner();
  }

  /** Move this process into the run's cgroup: everything it starts from now on is in it. */
  enterCgroup(): void {
    if (!this.state.cgroup || this.finished) return;
    try {
      moveToCgroup(this.state.cgroup, process.pid);
    } catch (e) {
      this.state.cgroupError = `cannot enter ${this.state.cgroup}: ${(e as Error).message}`;
      removeCgroup(this.state.cgroup);
      this.state.cgroup = null;
      this.writeOwner();
      this.guardian?.stdin?.write(JSON.stringify(this.state) + '\n');
    }
  }

  /** Back to the runner's own cgroup, so the run's cgroup can be killed without killing us. */
  private leaveCgroup(): void {
    if (this.state.cgroup && this.state.homeCgroup) {
      try {
        moveToCgroup(this.state.homeCgroup, process.pid);
      } catch {
        /* stays; the sweep then spares this process explicitly */
      }
    }
  }

  /**
   * End of the run, normal or interrupted: sweep what is left (the lines say what), remove the
   * state dir and the cgroup, and dismiss the guardian. Synchronous; safe to call twice.
   */
  finish(): string[] {
    if (this.finished) return [];
    this.finished = true;
    this.leaveCgroup();
    // Workers and servers that were told to stop are given a moment to exit by themselves: only
    // what is still there then was left behind. A cgroup can stay populated a moment after its
    // last listed process is gone (a server's io_uring worker threads end after it: the self-test
    // once swept such a cgroup, "0 processes", as left behind), so its emptiness is waited for too.
    const cg = this.state.cgroup;
    const busy = () =>
      [...runProcesses(this.state)].some((p) => p !== process.pid && alive(p)) ||
      (cg !== null && existsSync(cg) && cgroupPopulated(cg) && !cgroupProcs(cg).includes(process.pid));
    const until = Date.now() + 2000;
    while (Date.now() < until && busy()) sleepSync(20);
    const log = sweepRun(this.state, { runnerGone: false });
    this.dismissGuardian();
    return log;
  }

  /** Tell the guardian the run is swept and wait (1 s at most) until it has gone. */
  private dismissGuardian(): void {
    const g = this.guardian;
    if (!g?.pid) return;
    try {
      g.stdin!.end('bye\n');
    } catch {
      return; // the guardian died: nothing to dismiss
    }
    const until = Date.now() + 1000;
    while (alive(g.pid) && Date.now() < until) sleepSync(10);
  }

  /**
   * For a signal handler: like finish(). If something could not be released, the guardian is
   * left to look again once this process is dead.
   */
  abort(): string[] {
    if (this.finished) return [];
    this.finished = true;
    this.leaveCgroup();
    const log = sweepRun(this.state, { runnerGone: false });
    if (!log.some((l) => /^(could not|kept|process \d+ did not die)/.test(l))) this.dismissGuardian();
    return log;
  }
}

/** Spawn the guardian and wait until it reads its pipe; null (and the run goes on unguarded) if it cannot. */
async function spawnGuardian(state: RunState, entry: string): Promise<ChildProcess | null> {
  const env = { ...process.env };
  delete env.FUSECERT_STATE_DIR; // it must not count itself as a process of the run
  delete env.NODE_OPTIONS;
  let child: ChildProcess;
  try {
    // the state goes on the command line: it is there even if the runner dies before a write to
    // the pipe is flushed
    child = spawn(process.execPath, [entry, JSON.stringify(state)], {
      detached: true, // own session: a signal to the runner's process group or terminal spares it
      stdio: ['pipe', 'pipe', 'ignore'],
      env,
      cwd: '/',
    });
  } catch {
    return null;
  }
  child.on('error', () => {});
  child.stdin!.on('error', () => {});
  const ready = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 15_000);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('ready\n')) {
        clearTimeout(t);
        resolve(true);
      }
    });
    child.on('exit', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  if (!ready) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    return null;
  }
  child.stdout!.destroy();
  // neither the child nor its pipe keeps the runner's event loop alive
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return child;
}

/** The guardian process: read the run's state, then wait for "bye" or EOF. */
export function guardianMain(): void {
  const guardianLog = received().guardianLog;
  useCleanupTrace(received().cleanupLog);
  process.on('SIGHUP', () => {});
  process.on('SIGINT', () => {});
  process.on('SIGPIPE', () => {});
  let buf = '';
  let state: RunState | null = JSON.parse(process.argv[2] ?? 'null') as RunState | null;
  let bye = false;
  process.stdout.write('ready\n');
  process.stdout.on('error', () => {}); // the runner reads one "ready" and closes its end
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'bye') {
        bye = true;
        process.exit(0); // the runner swept its run and waits for this exit
      } else if (line.startsWith('{')) {
        state = JSON.parse(line) as RunState;
      }
    }
  });
  // The runner's death is seen two ways: EOF on the pipe (its last thread exited and the kernel
  // closed its fds), and its main thread gone or a zombie. The second matters: a runner killed
  // while one of its threads waits on a FUSE request the server already read stays a zombie
  // with that thread in D state, holding the pipe open, until the connection is aborted, and
  // the sweep is what aborts it.
  let swept = false;
  const sweepIfDead = () => {
    if (swept || !state || bye) return;
    if (alive(state.pid, state.start)) return;
    swept = true;
    const run: RunState = state;
    traceCleanup(`guardian: runner ${run.pid} gone`);
    let log: string[];
    try {
      log = sweepRun(run, { runnerGone: true });
    } catch (e) {
      log = [`sweep failed: ${(e as Error).stack ?? e}`];
    }
    if (guardianLog) {
      try {
        writeFileSync(guardianLog, `${new Date().toISOString()} runner ${run.pid} gone; ${run.stateDir}\n${log.map((l) => `  ${l}\n`).join('')}`, {
          flag: 'a',
        });
      } catch {
        /* nowhere to log */
      }
    }
    process.exit(0);
  };
  setInterval(sweepIfDead, 100);
  process.stdin.on('close', () => {
    traceCleanup(`guardian: pipe closed${bye ? ' after bye' : ''}`);
    if (bye || !state) process.exit(0);
    // EOF without "bye": the runner is exiting (a signal handler's process.exit, or a kill).
    // Wait until it is dead so nothing of the run is created after the sweep.
    const wait = () => {
      sweepIfDead();
      setTimeout(wait, 20);
    };
    wait();
  });
}
