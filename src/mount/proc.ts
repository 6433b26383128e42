// Processes and threads, read from /proc: the one parser of /proc/PID/stat behind liveness
// checks, the registry's process identity, process-group and child lists, and thread counts.
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, ...; Z and X have exited (a zombie only waits to be reaped). */
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot (field 22): with the pid it names one process. */
  start: string;
}

/** /proc/PID/stat (or /proc/PID/task/TID/stat), or null when it is gone. */
export function procStat(pid: number, tid?: number): ProcStat | null {
  let s: string;
  try {
    s = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // the comm field is parenthesised and may hold spaces and parentheses: fields start after the last ')'
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0] ?? '', ppid: Number(f[1]), pgrp: Number(f[2]), start: f[19] ?? '' };
}

export const hasExited = (st: ProcStat | null): boolean => st === null || st.state === 'Z' || st.state === 'X';

/** Every pid in /proc. */
export function allPids(): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    const n = Number(p);
    if (Number.isInteger(n) && n > 0) out.push(n);
  }
  return out;
}

/** Pids whose stat matches: children of a process, members of a process group. */
export function pidsWhere(match: (st: ProcStat) => boolean): number[] {
  return allPids().filter((p) => {
    const st = procStat(p);
    return st !== null && match(st);
  });
}

export function threadIds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** Threads of `pid` that have not exited (a zombie or a reaped process has none). */
export function liveThreads(pid: number): number {
  return threadIds(pid).filter((tid) => !hasExited(procStat(pid, tid))).length;
}
