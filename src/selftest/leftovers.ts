// What a run started with TMPDIR=tmp left on the machine, counted without starting another run:
// mounts under tmp, entries in tmp, processes that inherited tmp (TMPDIR or FUSECERT_STATE_DIR in
// their environment, or tmp in their command line: servers, vitest workers, the guardian),
// tracefs instances named after the runner's pid and cgroups named after it, and the fuse module's
// enable_uring still held for the runner or left changed with no living holder.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { cgroup2Root, fusecertDirs } from '../mount/guardian.ts';
import { allPids, hasExited, procStat } from '../mount/proc.ts';
import { spawnSync } from 'node:child_process';
import { uringLeftovers } from '../mount/uring-param.ts';

/**
 * BPF programs of the reply tracer (named fcr_*) still loaded, with the processes holding them
 * (fdinfo `prog_id:`). A program lives as long as an fd of it (its link) does; the tracer pins
 * nothing, so one held by no process, or by a process of the run, is left behind.
 */
export function tracerPrograms(): { id: number; name: string; holders: number[] }[] {
  const r = spawnSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  let progs: { id: number; name?: string }[];
  try {
    progs = JSON.parse(r.stdout);
  } catch {
    return [];
  }
  const ours = progs.filter((p) => p.name?.startsWith('fcr_'));
  if (!ours.length) return [];
  const holders = new Map<number, number[]>(ours.map((p) => [p.id, []]));
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let info = '';
      try {
        info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        continue;
      }
      const m = /^prog_id:\s+(\d+)/m.exec(info);
      const h = m && holders.get(Number(m[1]));
      if (h && !h.includes(pid)) h.push(pid);
    }
  }
  return ours.map((p) => ({ id: p.id, name: p.name!, holders: holders.get(p.id)! }));
}

export function leftoversOf(tmp: string, runnerPid: number): string[] {
  const out: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = l.split(' ');
    if (f[4]?.startsWith(tmp + '/')) out.push(`mount ${f[4]} (${f[f.indexOf('-') + 1]})`);
  }
  // tsx keeps its compile cache in TMPDIR (tsx-UID): a cache, not a resource of the run
  if (existsSync(tmp)) for (const e of readdirSync(tmp)) if (!e.startsWith('tsx-')) out.push(`temp ${path.join(tmp, e)}`);
  const inst = '/sys/kernel/tracing/instances';
  if (existsSync(inst)) for (const i of readdirSync(inst)) if (i.startsWith(`fusecert-${runnerPid}-`)) out.push(`tracefs ${i}`);
  const markers = [`TMPDIR=${tmp}`, `FUSECERT_STATE_DIR=${tmp}/`].map((m) => Buffer.from(`\0${m}`));
  for (const p of allPids()) {
    if (p === process.pid) continue;
    try {
      if (hasExited(procStat(p))) continue; // exited, waiting to be reaped
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${p}/environ`)]);
      const byEnv = markers.some((m) => {
        const i = env.indexOf(m);
        return i >= 0 && (env[i + m.length] === 0 || env[i + m.length] === 0x2f || m.toString().endsWith('/'));
      });
      if (byEnv || readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(tmp + '/')) out.push(`process ${p} (${readFileSync(`/proc/${p}/comm`, 'utf8').trim()})`);
    } catch {
      /* gone */
    }
  }
  const procs = new Set(out.filter((l) => l.startsWith('process ')).map((l) => Number(l.split(' ')[1])));
  let progs = tracerPrograms();
  // a program whose loader is exiting is freed a moment after its last fd closes: look again
  if (progs.some((p) => p.holders.length === 0)) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    const again = new Set(tracerPrograms().map((p) => p.id));
    progs = progs.filter((p) => again.has(p.id));
  }
  for (const p of progs) {
    if (p.holders.length === 0) out.push(`bpf program ${p.name} (id ${p.id}) held by no process`);
    else if (p.holders.some((h) => procs.has(h))) out.push(`bpf program ${p.name} (id ${p.id}) held by pid ${p.holders.join(',')}`);
  }
  const root = cgroup2Root();
  if (root) {
    for (const c of fusecertDirs(root, 4)) if (path.basename(c).startsWith(`fusecert-${runnerPid}-`)) out.push(`cgroup ${c}`);
  }
  out.push(...uringLeftovers(runnerPid));
  return out;
}

// `npx tsx src/selftest/leftovers.ts TMP PID`: the same count from a shell
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename ?? '')) {
  const l = leftoversOf(path.resolve(process.argv[2]), Number(process.argv[3]));
  for (const x of l) console.log(x);
  process.exitCode = l.length ? 1 : 0;
}
