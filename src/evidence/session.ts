// EvidenceSession: tracefs instances of our own that record what the kernel sent to one FUSE
// connection and which backing-file ioctls the server made.
//
// Why two instances per session: the request events fire in the thread of whoever touched the
// mount (the test, a child process, ...) and are filtered by `connection == N` only; the ioctls
// must be limited to the server's threads. Both use trace_clock `mono`, so their timestamps
// compare.
//
// How the ioctls are limited to the server's threads: the ioctl instance records the two
// backing-id commands of every task (a kernel filter on `cmd`), every ioctl exit (an exit has no
// `cmd` to filter on) and every fork and exit of a task, and a ThreadFollower (follow.ts) keeps
// the ioctls of the server's threads and of the tasks they fork, as the kernel's set_event_pid
// with event-fork would. The kernel's pid filter is not used because it hooks every context
// switch of the machine, which cost more than all the events together (follow.ts has figures).
//
// How events are read without loss: each instance's `trace_pipe` is opened O_NONBLOCK and
// drained until EAGAIN. trace_pipe is a consuming reader, so nothing is read twice and nothing
// between two reads is missed (unlike reading `trace` and clearing it, which races with
// writers). A worker thread (PipeReader) holds both pipes: every pollMs it looks at how full the
// ring buffers are (per_cpu/cpu*/stats) and reads only once a CPU's buffer is a quarter full,
// so during a window the kernel formats no text and no reader competes with the workload; a
// flush reads everything. Every flush also reads the stats: if the kernel overwrote or dropped
// events ("overrun", "commit overrun", "dropped events") the session is marked lost and flush()
// throws EvidenceLostError, so a clause fails instead of passing on a partial trace.
// tracefs reads never wait on a FUSE server, so the synchronous reads are safe here.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { mount as sysMount } from '../sys/index.ts';
import { BackingLedger } from './ledger.ts';
import { PipeReader } from './pipe-reader.ts';
import { ThreadFollower } from './follow.ts';
import { BACKING_OPEN_CMD, BACKING_CLOSE_CMD } from './parse.ts';
import { parseTraceLine, summariseRequests, type RequestSummary, type TraceEvent, type TraceSource } from './parse.ts';
import type { BackingCall, ReplyEvent, ReplyTracer } from './replies.ts';
import { Timeline } from './timeline.ts';

export const TRACEFS_ROOT = '/sys/kernel/tracing';

/** The pid tracefs instances are named after (the runner's, so a dead run's are found). */
let instanceOwner = process.pid;
export function useInstanceOwner(pid: number): void {
  instanceOwner = pid;
}
/**
 * How this process registers an instance before it makes it (a run's cleanup registry), for every
 * session it opens: a caller that opens a session of its own (a suite's extra mount, the platform
 * facts' reference mount) cannot forget it. A session's `registerInstance` option overrides it.
 */
let instanceRegistry: ((dir: string) => () => void) | null = null;
export function useInstanceRegistry(fn: ((dir: string) => () => void) | null): void {
  instanceRegistry = fn;
}
const INSTANCE_RE = /^fusecert-(\d+)-[0-9a-f]+(?:-ioctl)?$/;

export class EvidenceUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EvidenceUnavailableError';
  }
}

export class EvidenceLostError extends Error {
  constructor(
    readonly instance: string,
    readonly stats: Record<string, number>,
  ) {
    super(
      `trace events lost in ${instance}: ${Object.entries(stats)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}` + ' (ring buffer overrun; raise bufferKb or flush more often)',
    );
    this.name = 'EvidenceLostError';
  }
}

export interface TracefsStatus {
  available: boolean;
  root: string;
  reason?: string;
  /** fuse:fuse_request_send/end exist (Linux 6.12+) */
  fuseEvents?: boolean;
  /** syscalls:sys_enter_ioctl/sys_exit_ioctl exist (CONFIG_FTRACE_SYSCALLS): the ledger works */
  ioctlEvents?: boolean;
  /** we mounted tracefs ourselves */
  mounted?: boolean;
}

export async function tracefsStatus(root = TRACEFS_ROOT): Promise<TracefsStatus> {
  if (process.platform !== 'linux') return { available: false, root, reason: 'tracefs unavailable: not Linux' };
  if (process.getuid?.() !== 0) {
    return { available: false, root, reason: 'tracefs unavailable: not root (run as root or skip evidence clauses)' };
  }
  let mounted = false;
  if (!fs.existsSync(path.join(root, 'instances'))) {
    try {
      sysMount('nodev', root, 'tracefs', 0, null);
      mounted = true;
    } catch (e) {
      return { available: false, root, reason: `tracefs unavailable: not mounted at ${root} and mounting it failed: ${(e as Error).message}` };
    }
    if (!fs.existsSync(path.join(root, 'instances'))) {
      return { available: false, root, reason: `tracefs unavailable: ${root} has no instances/ directory` };
    }
  }
  const fuseEvents = fs.existsSync(path.join(root, 'events/fuse/fuse_request_send')) && fs.existsSync(path.join(root, 'events/fuse/fuse_request_end'));
  const ioctlEvents = fs.existsSync(path.join(root, 'events/syscalls/sys_enter_ioctl')) && fs.existsSync(path.join(root, 'events/syscalls/sys_exit_ioctl'));
  if (!fuseEvents) {
    return {
      available: false,
      root,
      fuseEvents,
      ioctlEvents,
      mounted,
      reason: 'tracefs unavailable: kernel has no fuse:fuse_request_send/end tracepoints (Linux 6.12+)',
    };
  }
  return { available: true, root, fuseEvents, ioctlEvents, mounted };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * removeInstanceSync without blocking the thread: disabling the events and the rmdir wait for
 * RCU grace periods in the kernel (measured ~70 ms of wall time, ~12 ms of CPU, for a 16 MiB
 * instance), and a worker that waits there cannot run its other clauses meanwhile.
 */
async function removeInstance(dir: string): Promise<void> {
  for (const [f, v] of [
    ['tracing_on', '0'],
    ['events/enable', '0'],
  ] as const) {
    try {
      await fs.promises.writeFile(path.join(dir, f), v);
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; ; i++) {
    try {
      await fs.promises.rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function removeInstanceSync(dir: string): void {
  // Disabling first makes the rmdir cheap and stops writers; rmdir alone would also do.
  for (const [f, v] of [
    ['tracing_on', '0'],
    ['events/enable', '0'],
  ] as const) {
    try {
      fs.writeFileSync(path.join(dir, f), v);
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY while a reader (ours, being closed) still holds trace_pipe; retry briefly
      if (code !== 'EBUSY' || i >= 50) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/**
 * Remove tracefs instances left by runs that died (fusecert-<pid>-* whose <pid> is not alive).
 * `alsoRunPid`: remove the instances of this run pid too (the runner calls it with its own pid
 * after its workers are gone). Returns the names removed.
 */
export function sweepStaleInstances(opts: { root?: string; alsoRunPid?: number } = {}): string[] {
  const dir = path.join(opts.root ?? TRACEFS_ROOT, 'instances');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = INSTANCE_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const ours = [...liveSessions].some((s) => s.instancePaths.includes(path.join(dir, name)));
    if (ours) continue;
    if (pid !== opts.alsoRunPid && isAlive(pid)) continue;
    try {
      removeInstanceSync(path.join(dir, name));
      removed.push(name);
    } catch {
      /* busy: someone alive reads it */
    }
  }
  return removed;
}

/** Thread ids of the processes (every entry of /proc/PID/task). */
export function threadsOf(pids: readonly number[]): number[] {
  const out: number[] = [];
  for (const pid of pids) {
    try {
      for (const t of fs.readdirSync(`/proc/${pid}/task`)) out.push(Number(t));
    } catch {
      /* process gone */
    }
  }
  return out;
}

/** The syscalls that put a file's data on stable storage, recorded for the server's threads. */
export const SYNC_SYSCALLS = ['fsync', 'fdatasync', 'syncfs', 'sync'] as const;

const liveSessions = new Set<EvidenceSession>();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort for a worker that exits without closing its sessions (SIGKILL is handled by
  // sweepStaleInstances on the next run).
  process.on('exit', () => {
    for (const s of liveSessions) s.closeSync();
  });
}

export interface EvidenceOptions {
  /** FUSE connection number (minor of the mount's st_dev) */
  connection: number;
  /**
   * Where the requests, the backing ioctls and the servers' syncs come from when a reply tracer
   * is given: `tracer` (the default: its records; the session's one tracefs instance then holds
   * only the window markers) or `tracefs` (the fuse and ioctl instances, as without a tracer).
   * FUSECERT_EVIDENCE_FROM sets the default.
   */
  evidenceFrom?: 'tracer' | 'tracefs';
  /** server process ids; their threads' ioctls make the ledger */
  pids: readonly number[];
  /** free text recorded in the first marker */
  label?: string;
  /** ring buffer per CPU for the requests instance, KiB (default 16384) */
  bufferKb?: number;
  /**
   * ring buffer per CPU for the ioctl instance, KiB (default 4096: it also holds every ioctl exit
   * of the machine; 10,000 open/close cycles of ptfs put ~0.7 MiB per CPU in it, under the
   * quarter that makes the reader read during a window)
   */
  ioctlBufferKb?: number;
  /** how often the reader looks at the buffers' fill, ms (default 200; 0: the pipes are read only at flush, on this thread) */
  pollMs?: number;
  /** the reader reads once a CPU's buffer holds this fraction of buffer_size_kb (default 0.25; 0: at every poll) */
  readAtFill?: number;
  /** read the pipes on this thread with a timer instead of a worker (what was done before the worker) */
  readOnMainThread?: boolean;
  /**
   * called with each instance directory before it is made (a cleanup registry's entry: a process
   * killed between the mkdir and a later registration would leave the instance to no sweep);
   * what it returns is called once the instance is removed. Default: useInstanceRegistry's.
   */
  registerInstance?: (path: string) => () => void;
  root?: string;
  /** keep the raw trace lines (rawText()), for recording fixtures */
  keepRaw?: boolean;
  /**
   * the connection's reply tracer (BPF: what the server answered, backing ioctl arguments),
   * started before the mount so it saw INIT; the session owns it from now on and closes it
   */
  replies?: ReplyTracer;
}

export interface EvidenceWindow<T = unknown> {
  label: string;
  result: T;
  /** events of both instances between the window's markers, in time order */
  events: TraceEvent[];
  requests: RequestSummary;
  ledger: BackingLedger;
  /** trace-clock timestamps (µs) of the begin and end markers */
  startTs: number;
  endTs: number;
  /** the reply tracer's events between the markers (empty without a tracer) */
  replies: ReplyEvent[];
  /**
   * the connection's timeline up to the window's end (every reply event of the session, so ids
   * and opens from before the window are known); null without a tracer. Built on first use.
   */
  timeline(): Timeline | null;
}

class Instance {
  readonly pipeFd: number;
  readonly markerFd: number;
  private rest = '';
  readonly events: TraceEvent[] = [];
  /** raw lines, when the session keeps them (fixtures) */
  readonly raw: string[] = [];
  constructor(
    readonly dir: string,
    readonly source: TraceSource,
    /** buffer_size_kb: the ring buffer per CPU */
    readonly kb: number,
    private readonly keepRaw = false,
    /** keeps the events of the tasks followed (the ioctl instance); none: every event is kept */
    readonly follower?: ThreadFollower,
  ) {
    this.pipeFd = fs.openSync(path.join(dir, 'trace_pipe'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    this.markerFd = fs.openSync(path.join(dir, 'trace_marker'), fs.constants.O_WRONLY);
  }
  write(file: string, value: string, flag = 'w') {
    fs.writeFileSync(path.join(this.dir, file), value, { flag });
  }
  writeAsync(file: string, value: string): Promise<void> {
    return fs.promises.writeFile(path.join(this.dir, file), value);
  }
  mark(text: string) {
    fs.writeSync(this.markerFd, text.replace(/\n/g, ' '));
  }
  private pending: string[] = [];
  /**
   * Move what the kernel has into JS memory, without parsing (the poll timer calls this; it
   * must stay cheap so it does not slow the workload it observes).
   */
  read(): void {
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.pipeFd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw e;
      }
      if (n <= 0) break;
      this.pending.push(buf.toString('latin1', 0, n));
      this.readSinceLossCheck = true;
    }
  }
  /** Text read elsewhere (the PipeReader worker), in pipe order. */
  feed(text: string): void {
    if (!text) return;
    this.pending.push(text);
    this.readSinceLossCheck = true;
  }
  /**
   * Whether anything was read since the loss counters were last read. The kernel loses events
   * only while it writes them, and what it writes is read by the next read of the pipe: a read
   * that brought nothing means nothing was written, so nothing can have been lost, since then.
   */
  readSinceLossCheck = true;
  /** Parse everything read so far (reading first unless a PipeReader owns the pipe); returns the new events. */
  drain(readHere = true): TraceEvent[] {
    if (readHere) this.read();
    const text = this.rest + this.pending.join('');
    this.pending = [];
    const cut = text.lastIndexOf('\n');
    this.rest = text.slice(cut + 1);
    const complete = text.slice(0, cut + 1);
    const evs: TraceEvent[] = [];
    for (const line of complete.split('\n')) {
      const e = parseTraceLine(line);
      if (e && this.follower && !this.follower.keep(e)) continue;
      if (this.keepRaw && line) this.raw.push(line);
      if (!e) continue;
      e.source = this.source;
      evs.push(e);
      this.events.push(e);
    }
    return evs;
  }
  /** Stats files of the CPUs' buffers (per_cpu/cpuN/stats). */
  statsFiles(): string[] {
    try {
      return fs.readdirSync(path.join(this.dir, 'per_cpu')).map((cpu) => path.join(this.dir, 'per_cpu', cpu, 'stats'));
    } catch {
      return [];
    }
  }
  /** per_cpu/cpuN/stats, kept open: the counters are read at every flush (pread at 0 renders them anew) */
  private statFds: number[] | null = null;
  private readonly statBuf = Buffer.allocUnsafe(4096);
  /** Summed loss counters over all CPUs. */
  lossStats(): Record<string, number> {
    const out: Record<string, number> = { overrun: 0, 'commit overrun': 0, 'dropped events': 0 };
    if (this.statFds === null) {
      this.statFds = [];
      for (const f of this.statsFiles()) {
        try {
          this.statFds.push(fs.openSync(f, fs.constants.O_RDONLY));
        } catch {
          /* a CPU without stats */
        }
      }
    }
    for (const fd of this.statFds) {
      let text = '';
      try {
        const n = fs.readSync(fd, this.statBuf, 0, this.statBuf.length, 0);
        text = this.statBuf.toString('latin1', 0, n);
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        const m = /^([a-z ]+):\s+(\d+)/.exec(line);
        if (m && m[1]! in out) out[m[1]!] = out[m[1]!]! + Number(m[2]);
      }
    }
    return out;
  }
  closeFds() {
    for (const fd of [this.pipeFd, this.markerFd, ...(this.statFds ?? [])]) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
  }
}

/**
 * The servers' backing ioctls and syncs among a reply tracer's records, as the tracefs ioctl
 * instance would have recorded them for the followed threads (an enter and an exit per ioctl:
 * the tracer sees a call at its exit only, so both carry the exit's time; the ledger's ids come
 * with attachArgs from the same records).
 */
export function ioEventsOf(replies: readonly ReplyEvent[]): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const e of replies) {
    const c = { task: '', tid: e.tid, tgid: e.tgid, cpu: -1, source: 'ioctl' as const };
    if (e.kind === 'backing' && e.server) {
      out.push({ ...c, kind: 'ioctl_enter', ts: e.enterTs, fd: e.devfd, cmd: e.cmd === 'open' ? BACKING_OPEN_CMD : BACKING_CLOSE_CMD, arg: 0n });
      out.push({ ...c, kind: 'ioctl_exit', ts: e.exitTs, ret: e.ret });
    } else if (e.kind === 'sync') {
      out.push({ ...c, kind: 'other', ts: e.ts, event: 'syscall', body: `sys_${e.call}(${e.call === 'sync' ? '' : `fd: 0x${e.fd.toString(16)}`})` });
    }
  }
  return out;
}

/**
 * The connection's requests among a reply tracer's records, as the tracefs fuse events would have
 * recorded them (the tracer's programs are on the same two tracepoints).
 */
export function requestEventsOf(replies: readonly ReplyEvent[], connection: number): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const e of replies) {
    if ((e.kind !== 'kreq' && e.kind !== 'kend') || e.connection !== connection) continue;
    const c = { task: '', tid: e.tid, tgid: e.tgid, cpu: -1, source: 'requests' as const, ts: e.ts, connection, unique: e.unique };
    if (e.kind === 'kreq') out.push({ ...c, kind: 'request_send', opcode: e.opcode, opname: e.opname, len: e.len });
    else out.push({ ...c, kind: 'request_end', len: e.len, error: e.error });
  }
  return out;
}

function mergeByTime(a: readonly TraceEvent[], b: readonly TraceEvent[]): TraceEvent[] {
  const out: TraceEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.ts <= b[j]!.ts)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

export class EvidenceSession {
  /** the requests instance directory */
  readonly instancePath: string;
  /** every instance directory of this session (requests, and ioctl when available) */
  readonly instancePaths: string[] = [];
  /** each instance's registration (registerInstance), forgotten once the instance is removed */
  private readonly forgets = new Map<string, () => void>();
  readonly connection: number;
  private req?: Instance;
  private io?: Instance;
  private timer?: NodeJS.Timeout;
  private reader?: PipeReader;
  private seq = 0;
  private closed = false;
  private pids: number[] = [];
  /** set once the kernel reported lost events; every later flush throws */
  lost?: EvidenceLostError;
  /** why the ledger is unavailable, when it is */
  ledgerUnavailable?: string;
  /** what the server answered (BPF), when a tracer was handed to open() */
  readonly replies: ReplyTracer | null = null;
  /** the ledger's ioctls and the servers' syncs come from the reply tracer's records (no ioctl instance) */
  private fromTracer = false;
  /** reply events already returned by flush() */
  private repliesFlushed = 0;

  private constructor(connection: number, instancePath: string) {
    this.connection = connection;
    this.instancePath = instancePath;
  }

  static async open(opts: EvidenceOptions): Promise<EvidenceSession> {
    const st = await tracefsStatus(opts.root);
    if (!st.available) throw new EvidenceUnavailableError(st.reason!);
    if (!Number.isInteger(opts.connection) || opts.connection <= 0) {
      throw new Error(`EvidenceSession.open: bad connection ${opts.connection}`);
    }
    const name = `fusecert-${instanceOwner}-${crypto.randomBytes(4).toString('hex')}`;
    const base = path.join(st.root, 'instances');
    const s = new EvidenceSession(opts.connection, path.join(base, name));
    if (opts.replies) (s as { replies: ReplyTracer | null }).replies = opts.replies;
    installExitHook();
    liveSessions.add(s);
    try {
      await s.setup(opts, base, name, st.ioctlEvents === true);
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  // async: the buffer's allocation and each event's enabling wait in the kernel (RCU), and the
  // worker runs its other clauses meanwhile
  private async makeInstance(dir: string, source: TraceSource, opts: EvidenceOptions, kb: number, follower?: ThreadFollower): Promise<Instance> {
    // registered, then listed for close(), then made: at every moment in between a sweep (or
    // close) finds the name and removes the instance if it exists
    const forget = (opts.registerInstance ?? instanceRegistry)?.(dir) ?? (() => {});
    this.forgets.set(dir, forget);
    this.instancePaths.push(dir);
    try {
      await fs.promises.mkdir(dir);
    } catch (e) {
      // not made (EEXIST would be someone else's): neither ours to remove nor to sweep
      this.instancePaths.pop();
      this.forgets.delete(dir);
      forget();
      throw e;
    }
    for (const [f, v] of [
      ['tracing_on', '0'],
      ['buffer_size_kb', String(kb)],
      ['trace_clock', 'mono'],
      ['options/record-tgid', '1'],
    ] as const)
      await fs.promises.writeFile(path.join(dir, f), v);
    return new Instance(dir, source, kb, opts.keepRaw, follower);
  }

  private async setup(opts: EvidenceOptions, base: string, name: string, ioctl: boolean) {
    // With a reply tracer the requests, backing ioctls and syncs are its records: the same
    // tracepoints recorded by tracefs as well cost ~10 % of an open/close cycle more (the fuse
    // events) and ~3 % (an instance on the syscall tracepoints), bench/evidence-overhead.ts with
    // FUSECERT_EVIDENCE_FROM=tracefs
    this.fromTracer = !!this.replies && (opts.evidenceFrom ?? (process.env.FUSECERT_EVIDENCE_FROM === 'tracefs' ? 'tracefs' : 'tracer')) === 'tracer';
    if (this.fromTracer) ioctl = false;
    const req = (this.req = await this.makeInstance(path.join(base, name), 'requests', opts, opts.bufferKb ?? 16384));
    for (const ev of this.fromTracer ? [] : ['fuse_request_send', 'fuse_request_end']) {
      await req.writeAsync(`events/fuse/${ev}/filter`, `connection == ${this.connection}`);
      await req.writeAsync(`events/fuse/${ev}/enable`, '1');
    }
    req.write('tracing_on', '1');

    if (this.fromTracer) {
      this.pids.push(...opts.pids);
    } else if (!ioctl) {
      this.ledgerUnavailable = 'kernel has no syscalls:sys_enter_ioctl/sys_exit_ioctl tracepoints (CONFIG_FTRACE_SYSCALLS)';
    } else {
      const io = (this.io = await this.makeInstance(path.join(base, name + '-ioctl'), 'ioctl', opts, opts.ioctlBufferKb ?? 4096, new ThreadFollower()));
      try {
        await io.writeAsync(
          'events/syscalls/sys_enter_ioctl/filter',
          `cmd == 0x${BACKING_OPEN_CMD.toString(16)} || cmd == 0x${BACKING_CLOSE_CMD.toString(16)}`,
        );
      } catch {
        // older filter syntax: every ioctl is recorded, the parser and the ledger ignore other commands
      }
      for (const ev of ['syscalls/sys_enter_ioctl', 'syscalls/sys_exit_ioctl', 'sched/sched_process_fork', 'sched/sched_process_exit']) {
        await io.writeAsync(`events/${ev}/enable`, '1');
      }
      // the server's own syncs (RW-014: FUSE_FSYNC must reach the backing file): rare calls, kept
      // for the followed threads like the ioctls; parsed as kind 'other' ("sys_fsync(fd: 7)")
      for (const ev of SYNC_SYSCALLS)
        if (fs.existsSync(path.join(io.dir, `events/syscalls/sys_enter_${ev}`))) await io.writeAsync(`events/syscalls/sys_enter_${ev}/enable`, '1');
      io.write('tracing_on', '1');
      this.setPids(opts.pids);
    }
    this.mark(`fusecert session open connection=${this.connection} pids=${opts.pids.join(',')}${opts.label ? ' ' + opts.label : ''}`);
    const poll = opts.pollMs ?? 200;
    if (poll > 0 && !opts.readOnMainThread) {
      // the pipes are read on a worker thread, and only when a buffer fills up or a flush asks:
      // the workload on this thread is not stalled while the kernel formats events
      const insts = [this.req!, ...(this.io ? [this.io] : [])];
      const fill = opts.readAtFill ?? 0.25;
      this.reader = new PipeReader(
        insts.map((inst) => ({ fd: inst.pipeFd, stats: inst.statsFiles(), readAtBytes: Math.floor(inst.kb * 1024 * fill) })),
        poll,
        ([reqText, ioText]) => {
          this.req?.feed(reqText ?? '');
          this.io?.feed(ioText ?? '');
        },
      );
    } else if (poll > 0) {
      this.timer = setInterval(() => {
        try {
          this.req?.read();
          this.io?.read();
        } catch {
          /* reported by the next flush */
        }
      }, poll);
      this.timer.unref();
    }
  }

  private setPids(pids: readonly number[]) {
    const io = this.io;
    if (!io) {
      if (this.fromTracer) this.pids.push(...pids); // the tracer follows them (addPids)
      return;
    }
    this.pids.push(...pids);
    // marker first, then the listing: a thread created in between shows as a fork of a listed one
    const marker = io.follower!.nextMarker();
    io.mark(marker);
    io.follower!.add(marker, threadsOf(pids));
  }

  /** Add server processes (e.g. after a restart); all their threads are followed from now on. */
  addPids(pids: readonly number[]): void {
    this.setPids(pids);
    void this.replies?.addPids(pids).catch(() => {});
  }

  /** Write a marker line into both instances. */
  mark(label: string): void {
    this.req?.mark(label);
    this.io?.mark(label);
  }

  private checkLoss(): void {
    if (this.lost) throw this.lost;
    for (const inst of [this.req, this.io]) {
      if (!inst?.readSinceLossCheck) continue;
      inst.readSinceLossCheck = false;
      const st = inst.lossStats();
      if (Object.values(st).some((v) => v > 0)) {
        this.lost = new EvidenceLostError(path.basename(inst.dir), st);
        throw this.lost;
      }
    }
  }

  /** Read what is new in both instances; throws EvidenceLostError if the kernel lost events. */
  async flush(): Promise<TraceEvent[]> {
    return this.flushUpTo(true);
  }

  /** flush(); without `tracer` the reply tracer is left for later (a window's begin: its records are picked by time) */
  private async flushUpTo(tracer: boolean): Promise<TraceEvent[]> {
    if (this.closed) throw new Error('EvidenceSession is closed');
    if (this.reader) await this.reader.take();
    let a = this.req ? this.req.drain(!this.reader) : [];
    let b = this.io ? this.io.drain(!this.reader) : [];
    this.checkLoss();
    if (this.fromTracer && tracer) {
      await this.repliesForLedger();
      const all = this.replies!.events;
      const fresh = all.slice(this.repliesFlushed);
      a = mergeByTime(a, requestEventsOf(fresh, this.connection));
      b = ioEventsOf(fresh);
      this.repliesFlushed = all.length;
    }
    return mergeByTime(a, b);
  }

  /** All events read so far, both instances (or the requests and the tracer's calls) merged in time order. */
  events(): TraceEvent[] {
    if (this.fromTracer) {
      const all = this.replies!.events;
      return mergeByTime(mergeByTime(this.req?.events ?? [], requestEventsOf(all, this.connection)), ioEventsOf(all));
    }
    return mergeByTime(this.req?.events ?? [], this.io?.events ?? []);
  }

  /**
   * Flush the tracer for a ledger made of its records: one that stopped or lost records cannot
   * say which backing calls were made, and a window without them would pass what it cannot see.
   */
  private async repliesForLedger(): Promise<void> {
    if (!(await this.flushReplies())) throw new EvidenceUnavailableError(`backing ledger unavailable: reply evidence ${this.repliesError ?? 'stopped'}`);
    if (this.replies!.lost > 0) throw new EvidenceLostError('the reply tracer', { 'lost records': this.replies!.lost });
  }

  /**
   * Run fn between two markers and return what the kernel and the server did meanwhile.
   * The end marker is written and the trace flushed also when fn throws (then fn's error is
   * rethrown). Requests are counted by their send inside the window.
   */
  async window<T>(label: string, fn: () => T | Promise<T>): Promise<EvidenceWindow<T>> {
    if (this.closed) throw new Error('EvidenceSession is closed');
    const n = ++this.seq;
    const begin = `fusecert window ${n} begin ${label}`;
    const end = `fusecert window ${n} end ${label}`;
    // the reader's start-up (a worker thread, ~30 ms of CPU) is over before fn runs, so it does
    // not land on the workload the window observes; it overlaps whatever ran since open()
    await this.reader?.ready;
    // the tracer's records are picked by time after the end marker: no tracer flush here
    await this.flushUpTo(false);
    const from = { req: this.req?.events.length ?? 0, io: this.io?.events.length ?? 0 };
    const repliesFrom = this.replies?.events.length ?? 0;
    this.req?.mark(begin);
    this.io?.mark(begin);
    let result: T;
    try {
      result = await fn();
    } finally {
      this.io?.mark(end);
      this.req?.mark(end);
      await this.flush();
    }
    const slice = (inst: Instance | undefined, start: number): { evs: TraceEvent[]; b?: TraceEvent; e?: TraceEvent } => {
      if (!inst) return { evs: [] };
      const all = inst.events;
      let i = start;
      while (i < all.length && !(all[i]!.kind === 'marker' && (all[i] as { text: string }).text === begin)) i++;
      let j = i + 1;
      while (j < all.length && !(all[j]!.kind === 'marker' && (all[j] as { text: string }).text === end)) j++;
      if (i >= all.length || j >= all.length) {
        throw new Error(`evidence window "${label}": markers not found in ${path.basename(inst.dir)}`);
      }
      return { evs: all.slice(i + 1, j), b: all[i], e: all[j] };
    };
    const r = slice(this.req, from.req);
    const startTs = r.b!.ts;
    const endTs = r.e!.ts;
    let replies: ReplyEvent[] = [];
    let timeline: () => Timeline | null = () => null;
    let ioEvents = slice(this.io, from.io).evs;
    // a ledger from the tracer's records: the flush after the end marker flushed the tracer too
    const haveReplies = this.fromTracer || (!!this.replies && (await this.flushReplies()));
    if (haveReplies) {
      // the window's events came in with this flush or the one before it began: no scan of the session's history
      replies = this.replies!.events.slice(repliesFrom).filter((e) => e.ts >= startTs && e.ts <= endTs);
      if (this.fromTracer) ioEvents = ioEventsOf(replies);
    }
    const reqEvents = this.fromTracer ? mergeByTime(r.evs, requestEventsOf(replies, this.connection)) : r.evs;
    const events = mergeByTime(reqEvents, ioEvents);
    const ledger = new BackingLedger(events, this.connection);
    if (haveReplies) {
      const all = this.replies!.events;
      const upTo = all.length;
      ledger.attachArgs(replies.filter((e): e is BackingCall => e.kind === 'backing'));
      let built: Timeline | undefined;
      timeline = () => (built ??= new Timeline(all.slice(0, upTo), this.connection, this.serverPids()));
    }
    return { label, result: result!, events, requests: summariseRequests(reqEvents, this.connection), ledger, startTs, endTs, replies, timeline };
  }

  /** why the reply evidence stopped or is incomplete, when it did */
  repliesError?: string;

  /** Flush the reply tracer; false once it failed (the windows go on without reply evidence). */
  private async flushReplies(): Promise<boolean> {
    if (!this.replies || this.repliesError?.startsWith('stopped')) return false;
    try {
      await this.replies.flush();
    } catch (e) {
      this.repliesError = `stopped: ${(e as Error).message}`;
      return false;
    }
    if (this.replies.lost > 0) this.repliesError = `incomplete: the BPF ring buffer lost ${this.replies.lost} event(s)`;
    return true;
  }

  /** The server processes the session follows (those given to open() and addPids()). */
  serverPids(): number[] {
    return [...this.pids];
  }

  /**
   * The connection's timeline of everything so far (flushing the tracer), or null without a
   * tracer. For a failure's diagnosis: the clause's requests, replies and backing calls.
   */
  async timeline(): Promise<Timeline | null> {
    if (!this.replies || this.closed || !(await this.flushReplies())) return null;
    return new Timeline(this.replies.events, this.connection, this.serverPids());
  }

  /** The request summary of a window, or of everything read so far. */
  requestsOf(window?: EvidenceWindow): RequestSummary {
    if (window) return window.requests;
    return summariseRequests(this.fromTracer ? this.events() : (this.req?.events ?? []), this.connection);
  }

  /** The backing-id ledger of everything read so far (call flush() first for the latest). */
  ledger(): BackingLedger {
    if (!this.io && !this.fromTracer) throw new EvidenceUnavailableError(`backing ledger unavailable: ${this.ledgerUnavailable}`);
    const l = new BackingLedger(this.events(), this.connection);
    if (this.fromTracer) l.attachArgs(this.replies!.events.filter((e): e is BackingCall => e.kind === 'backing'));
    return l;
  }

  /** The raw lines read so far from both instances, merged in time order (keepRaw only). */
  rawText(): string {
    const tagged = (inst?: Instance) => (inst?.raw ?? []).map((line) => ({ line, ts: parseTraceLine(line)?.ts ?? 0 }));
    const a = tagged(this.req);
    const b = tagged(this.io);
    const out: string[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      if (j >= b.length || (i < a.length && a[i]!.ts <= b[j]!.ts)) out.push(a[i++]!.line);
      else out.push(b[j++]!.line);
    }
    return out.join('\n') + '\n';
  }

  /** Drop the events read so far (long runs), keeping the session. */
  forget(): void {
    this.req?.events.splice(0);
    this.io?.events.splice(0);
    this.replies?.forget();
    this.repliesFlushed = 0;
  }

  /** instances removed (and their registration forgotten) */
  private readonly removed = new Set<string>();

  /** Stop reading and close the fds (no thread reads the pipes once this returns). */
  private stopReading(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.reader?.stopSync();
    this.replies?.close();
    for (const inst of [this.io, this.req]) inst?.closeFds();
  }

  /** Disable everything and remove the instances, without blocking the thread. Safe to call more than once. */
  async close(): Promise<void> {
    if (!this.closed) this.stopReading();
    let err: unknown;
    for (const dir of this.left())
      try {
        await removeInstance(dir);
        this.done(dir);
      } catch (e) {
        err ??= e; // still registered: the run's sweep removes it
      }
    this.finish(err);
  }

  /** close(), synchronously (a worker's exit hook): also what an unfinished close() had not removed yet. */
  closeSync(): void {
    if (!this.closed) this.stopReading();
    let err: unknown;
    for (const dir of this.left())
      try {
        removeInstanceSync(dir);
        this.done(dir);
      } catch (e) {
        err ??= e;
      }
    this.finish(err);
  }

  /** The instances not removed yet, the last made first. */
  private left(): string[] {
    return [...this.instancePaths].reverse().filter((d) => !this.removed.has(d));
  }
  private done(dir: string): void {
    this.removed.add(dir);
    this.forgets.get(dir)?.();
  }
  private finish(err: unknown): void {
    liveSessions.delete(this);
    if (err) throw err;
  }
}
