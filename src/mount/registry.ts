// Every resource a run creates (mount, process, tracefs instance, temp dir) is written here as
// a small file before it exists, and removed after it is gone. The runner's parent process
// sweeps what is left when workers finish, crash or are killed, and on SIGINT/SIGTERM.
import { mkdirSync, writeFileSync, rmSync, readdirSync, readFileSync, existsSync, rmdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { mountsUnder, abortConnection } from './mountinfo.ts';
import { procStat, hasExited } from './proc.ts';
import { traceCleanup } from './trace.ts';
import { releaseUring } from './uring-param.ts';

export type Resource =
  | { kind: 'mount'; path: string }
  | { kind: 'process'; pid: number; start: string }
  | { kind: 'tracefs'; path: string }
  | { kind: 'tmpdir'; path: string }
  /** the run's hold on the fuse module's enable_uring (src/mount/uring-param.ts): runner pid + start */
  | { kind: 'uring-hold'; pid: number; start: string };

let counter = 0;

let registryDir: string | null = null;

/** Where this process registers what it creates (null: nothing is registered). Set by the caller. */
export function useRegistry(dir: string | null): void {
  registryDir = dir;
}

export function stateDir(): string | null {
  return registryDir;
}

/** Registers a resource; returns a function that forgets it once it has been released. */
export function register(r: Resource): () => void {
  const dir = stateDir();
  if (!dir) return () => {};
  mkdirSync(dir, { recursive: true });
  const f = path.join(dir, `${r.kind}-${process.pid}-${++counter}.json`);
  // written aside and renamed: a process killed mid-write leaves no half entry for the sweep
  writeFileSync(`${f}.new`, JSON.stringify(r));
  renameSync(`${f}.new`, f);
  traceCleanup(`register ${describe(r)}`);
  return () => {
    rmSync(f, { force: true });
    traceCleanup(`forget ${describe(r)}`);
  };
}

function describe(r: Resource): string {
  return `${r.kind} ${'path' in r ? r.path : r.pid}`;
}

/** The process's start time: with the pid it names one process, so a recycled pid is never signalled. */
export function processStart(pid: number): string {
  return procStat(pid)?.start ?? '';
}

/** Running (a zombie is not: it has exited and only waits to be reaped) and, if given, the same process. */
export function alive(pid: number, start?: string): boolean {
  const st = procStat(pid);
  return !hasExited(st) && (start === undefined || st?.start === start);
}

/** Stop a tracefs instance and remove it; EBUSY (a reader being killed still holds trace_pipe) is waited out, 2 s at most. */
export function removeInstance(dir: string): void {
  for (const [f, v] of [
    ['tracing_on', '0'],
    ['events/enable', '0'],
  ] as const) {
    try {
      writeFileSync(path.join(dir, f), v);
    } catch {
      /* gone */
    }
  }
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 100) throw e; // a reader that is being killed still holds trace_pipe
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function releaseMount(p: string, log: string[]): void {
  for (const m of mountsUnder(p).reverse()) {
    if (m.fstype.startsWith('fuse')) abortConnection(m.minor);
    const r = execaSync('umount', ['-l', m.mountpoint], { reject: false });
    log.push(`unmounted ${m.mountpoint}${r.exitCode === 0 ? '' : ` (failed: ${r.stderr.trim()})`}`);
  }
}

/**
 * Sweep everything registered in DIR. Order matters: processes, mounts, tracefs, temp dirs, the enable_uring hold.
 * Synchronous on purpose: it runs from signal handlers, where other handlers may exit the
 * process as soon as ours returns.
 */
export function sweep(dir: string): string[] {
  const log: string[] = [];
  if (!existsSync(dir)) return log;
  const entries: { f: string; r: Resource }[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const f = path.join(dir, name);
    try {
      entries.push({ f, r: JSON.parse(readFileSync(f, 'utf8')) as Resource });
    } catch {
      // an entry cut short (a writer killed mid-write, before entries were renamed into place):
      // what it named is still found by the run's sweep (mounts under its state dir, its cgroup)
      log.push(`skipped an unreadable registry entry ${name}`);
    }
  }
  traceCleanup(`sweep registry ${dir}: ${entries.length} entries${entries.length ? ': ' + entries.map((e) => describe(e.r)).join(', ') : ''}`);
  // the enable_uring hold last: no process of the run is left to start a server that needs it
  const order = ['process', 'mount', 'tracefs', 'tmpdir', 'uring-hold'];
  entries.sort((a, b) => order.indexOf(a.r.kind) - order.indexOf(b.r.kind));
  for (const { f, r } of entries) {
    try {
      if (r.kind === 'process') {
        if (alive(r.pid, r.start)) {
          process.kill(r.pid, 'SIGKILL');
          log.push(`killed left-over process ${r.pid}`);
        }
      } else if (r.kind === 'mount') {
        releaseMount(r.path, log);
      } else if (r.kind === 'tracefs') {
        if (existsSync(r.path)) {
          removeInstance(r.path);
          log.push(`removed tracefs instance ${r.path}`);
        }
      } else if (r.kind === 'tmpdir') {
        releaseMount(r.path, log);
        if (existsSync(r.path) && mountsUnder(r.path).length === 0) {
          rmSync(r.path, { recursive: true, force: true });
          log.push(`removed ${r.path}`);
        }
      } else if (r.kind === 'uring-hold') {
        log.push(`released the enable_uring hold of run pid ${r.pid}`, ...releaseUring({ pid: r.pid, start: r.start }));
      }
      rmSync(f, { force: true });
    } catch (e) {
      log.push(`could not release ${JSON.stringify(r)}: ${(e as Error).message}`);
    }
  }
  return log;
}
