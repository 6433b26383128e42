// The fuse module's enable_uring parameter, shared by every fusecert run on the machine. A run
// certifying a server that claims the io_uring transport needs it on (with it off the kernel
// refuses the ring's registration and libfuse falls back to /dev/fuse without a word), and it
// must be what it was once no run needs it, also after a run is killed.
//
// Holders: one state file, /run/fusecert/enable_uring.json, { original, holders: [{pid, start}] },
// changed only under a lock file beside it. The first holder records the value it found and turns
// the parameter on; every holder adds itself (runner pid + start time: a recycled pid is not the
// holder); a holder that leaves removes itself, and the last one (no living holder left) writes
// the original value back and removes the file. A holder that died without leaving is removed by
// whoever looks next: the run's own sweeps (its registry holds a `uring-hold` entry, released by the
// runner at the end, by its SIGINT/SIGTERM handler, by its guardian after a SIGKILL, or by the next
// run's dead-run sweep), and any hold or release prunes dead holders first. Synchronous throughout:
// it runs in signal handlers and in the guardian.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { hasExited, procStat } from './proc.ts';

export const ENABLE_URING = '/sys/module/fuse/parameters/enable_uring';
export const HOLD_DIR = '/run/fusecert';

/** Where the parameter and the holders' state are; tests point both into a temporary directory. */
export interface UringEnv {
  param: string;
  dir: string;
  alive: (pid: number, start: string) => boolean;
}

// as registry.ts's alive(), which cannot be imported here (the registry imports this module)
const processAlive = (pid: number, start: string) => {
  const st = procStat(pid);
  return !hasExited(st) && st?.start === start;
};
const defaultEnv = (): UringEnv => ({ param: ENABLE_URING, dir: HOLD_DIR, alive: processAlive });

export interface Holder {
  pid: number;
  start: string;
}

export interface HoldState {
  /** the value the first holder found ('Y' or 'N') */
  original: string;
  holders: Holder[];
}

export class UringParamError extends Error {}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The parameter's value ('Y' or 'N'), or null on a kernel without FUSE over io_uring. */
export function uringParam(env: UringEnv = defaultEnv()): string | null {
  try {
    return readFileSync(env.param, 'utf8').trim();
  } catch {
    return null;
  }
}

/** This process as a holder. */
export function selfHolder(): Holder {
  return { pid: process.pid, start: procStat(process.pid)?.start ?? '' };
}

const stateFile = (env: UringEnv) => path.join(env.dir, 'enable_uring.json');
const lockFile = (env: UringEnv) => path.join(env.dir, 'enable_uring.lock');

export function readHoldState(env: UringEnv = defaultEnv()): HoldState | null {
  try {
    const s = JSON.parse(readFileSync(stateFile(env), 'utf8')) as HoldState;
    return typeof s.original === 'string' && Array.isArray(s.holders) ? s : null;
  } catch {
    return null;
  }
}

function writeHoldState(env: UringEnv, s: HoldState | null): void {
  const f = stateFile(env);
  if (!s) {
    rmSync(f, { force: true });
    return;
  }
  writeFileSync(`${f}.new`, JSON.stringify(s));
  renameSync(`${f}.new`, f); // never half written for another run
}

/**
 * Run fn under the lock file (O_EXCL create holding "pid start"). A lock whose maker is dead (killed
 * between lock and unlock) is broken; a live one is waited for, 5 s at most.
 */
function locked<T>(env: UringEnv, fn: () => T): T {
  mkdirSync(env.dir, { recursive: true, mode: 0o755 });
  const lock = lockFile(env);
  const me = selfHolder();
  const until = Date.now() + 5000;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o644);
      writeSync(fd, `${me.pid} ${me.start}`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new UringParamError(`cannot create ${lock}: ${(e as Error).message}`);
    }
    let owner: string[] = [];
    try {
      owner = readFileSync(lock, 'utf8').split(' ');
    } catch {
      continue; // removed meanwhile
    }
    // a lock file still empty is being written: only one whose maker is known dead is broken
    if (owner.length === 2 && !env.alive(Number(owner[0]), owner[1]!)) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > until) throw new UringParamError(`${lock} held by pid ${owner[0] ?? '?'} for more than 5 s`);
    sleepSync(5);
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function setParam(env: UringEnv, value: string): void {
  try {
    writeFileSync(env.param, value);
  } catch (e) {
    throw new UringParamError(`cannot write ${value} to ${env.param}: ${(e as Error).message} (needs root and a writable /sys)`);
  }
}

const same = (a: Holder, b: Holder) => a.pid === b.pid && a.start === b.start;

/** Drop dead holders; with none left, write the original value back. Returns what it did. Under the lock. */
function settle(env: UringEnv, s: HoldState, log: string[]): HoldState | null {
  const dead = s.holders.filter((h) => !env.alive(h.pid, h.start));
  for (const h of dead) log.push(`dropped the enable_uring hold of dead run pid ${h.pid}`);
  const holders = s.holders.filter((h) => env.alive(h.pid, h.start));
  if (holders.length) return { ...s, holders };
  if (uringParam(env) !== s.original) {
    setParam(env, s.original);
    log.push(`restored ${env.param} to ${s.original}`);
  }
  return null;
}

/**
 * Hold enable_uring on for `holder`: the first holder records the value it finds and writes Y.
 * Throws UringParamError when the kernel has no such parameter or it cannot be written.
 */
export function holdUring(holder: Holder, env: UringEnv = defaultEnv()): { original: string; changed: boolean; log: string[] } {
  const now = uringParam(env);
  if (now === null) throw new UringParamError(`${env.param} is missing: this kernel has no FUSE over io_uring`);
  return locked(env, () => {
    const log: string[] = [];
    let s = readHoldState(env);
    if (s) s = settle(env, s, log);
    const original = s?.original ?? uringParam(env) ?? now;
    const holders = [...(s?.holders ?? []).filter((h) => !same(h, holder)), holder];
    writeHoldState(env, { original, holders }); // first: a holder killed after the write below is found
    let changed = false;
    if (uringParam(env) !== 'Y') {
      setParam(env, 'Y');
      changed = true;
    }
    return { original, changed, log };
  });
}

/** Leave: the last living holder writes the original value back. Returns what it did. */
export function releaseUring(holder: Holder, env: UringEnv = defaultEnv()): string[] {
  if (!existsSync(stateFile(env))) return [];
  return locked(env, () => {
    const log: string[] = [];
    const s = readHoldState(env);
    if (!s) return log;
    writeHoldState(env, settle(env, { ...s, holders: s.holders.filter((h) => !same(h, holder)) }, log));
    return log;
  });
}

/** For the dead-run sweep: drop the holds of dead runs, restoring the value when none is left. */
export function sweepUringHolds(env: UringEnv = defaultEnv()): string[] {
  if (!existsSync(stateFile(env))) return [];
  return locked(env, () => {
    const log: string[] = [];
    const s = readHoldState(env);
    if (s) writeHoldState(env, settle(env, s, log));
    return log;
  });
}

/**
 * What the leftover accounting counts: holds of runner `pid` still recorded, and the parameter
 * left changed with no living holder (a sweep that did not restore it).
 */
export function uringLeftovers(pid: number, env: UringEnv = defaultEnv()): string[] {
  const s = readHoldState(env);
  if (!s) return [];
  const out: string[] = [];
  const value = uringParam(env);
  for (const h of s.holders) if (h.pid === pid) out.push(`kernel parameter enable_uring held for run pid ${pid} (now ${value}, was ${s.original})`);
  if (!s.holders.some((h) => env.alive(h.pid, h.start)) && value !== s.original)
    out.push(`kernel parameter enable_uring left ${value} (was ${s.original}) with no living holder`);
  return out;
}
