// Parsing of tracefs text output (the `trace` file and `trace_pipe`), and request summaries.
//
// A line looks like (record-tgid on, as our instances set it; without it the "(  TGID)"
// column is absent):
//            cat-4083    (   4083) [000] ...2.   989.231667: fuse_request_send: connection 40 req 10 opcode 15 (FUSE_READ) len 80
//         bindfs-4077    (   4077) [000] .....   989.231811: fuse_request_end: connection 40 req 10 len 131088 error 0
//           ptfs-5001    (   4990) [001] .....  1001.000001: sys_ioctl(fd: 5, cmd: 4010e501, arg: 7ffc12345678)
//           ptfs-5001    (   4990) [001] .....  1001.000009: sys_ioctl -> 0x1
//           bash-4071    (   4071) [001] ...1.   989.216188: tracing_mark_write: fusecert begin read
//           ptfs-4990    (   4990) [000] .....  1001.000000: sched_process_fork: comm=ptfs pid=4990 child_comm=ptfs child_pid=5001
//           ptfs-5001    (   4990) [001] .....  1002.000000: sched_process_exit: comm=ptfs pid=5001 prio=120 group_dead=false
// The syscall tracepoints print every argument in hex without a prefix (older kernels) or
// with "0x" (print fmt of the format file); both are accepted. A negative return is printed as
// 64-bit two's complement: `sys_ioctl -> 0xfffffffffffffffe` is -2 (ENOENT).

import { errnoName, FUSE_DEV_IOC } from '../sys/index.ts';

export const FUSE_OPCODES: Record<number, string> = {
  1: 'FUSE_LOOKUP',
  2: 'FUSE_FORGET',
  3: 'FUSE_GETATTR',
  4: 'FUSE_SETATTR',
  5: 'FUSE_READLINK',
  6: 'FUSE_SYMLINK',
  8: 'FUSE_MKNOD',
  9: 'FUSE_MKDIR',
  10: 'FUSE_UNLINK',
  11: 'FUSE_RMDIR',
  12: 'FUSE_RENAME',
  13: 'FUSE_LINK',
  14: 'FUSE_OPEN',
  15: 'FUSE_READ',
  16: 'FUSE_WRITE',
  17: 'FUSE_STATFS',
  18: 'FUSE_RELEASE',
  20: 'FUSE_FSYNC',
  21: 'FUSE_SETXATTR',
  22: 'FUSE_GETXATTR',
  23: 'FUSE_LISTXATTR',
  24: 'FUSE_REMOVEXATTR',
  25: 'FUSE_FLUSH',
  26: 'FUSE_INIT',
  27: 'FUSE_OPENDIR',
  28: 'FUSE_READDIR',
  29: 'FUSE_RELEASEDIR',
  30: 'FUSE_FSYNCDIR',
  31: 'FUSE_GETLK',
  32: 'FUSE_SETLK',
  33: 'FUSE_SETLKW',
  34: 'FUSE_ACCESS',
  35: 'FUSE_CREATE',
  36: 'FUSE_INTERRUPT',
  37: 'FUSE_BMAP',
  38: 'FUSE_DESTROY',
  39: 'FUSE_IOCTL',
  40: 'FUSE_POLL',
  41: 'FUSE_NOTIFY_REPLY',
  42: 'FUSE_BATCH_FORGET',
  43: 'FUSE_FALLOCATE',
  44: 'FUSE_READDIRPLUS',
  45: 'FUSE_RENAME2',
  46: 'FUSE_LSEEK',
  47: 'FUSE_COPY_FILE_RANGE',
  48: 'FUSE_SETUPMAPPING',
  49: 'FUSE_REMOVEMAPPING',
  50: 'FUSE_SYNCFS',
  51: 'FUSE_TMPFILE',
  52: 'FUSE_STATX',
  4096: 'CUSE_INIT',
};

export const BACKING_OPEN_CMD = FUSE_DEV_IOC.BACKING_OPEN;
export const BACKING_CLOSE_CMD = FUSE_DEV_IOC.BACKING_CLOSE;

/** Which tracefs instance an event came from (a session reads two, see session.ts). */
export type TraceSource = 'requests' | 'ioctl';

interface Common {
  /** comm of the thread */
  task: string;
  /** thread id (the kernel's "pid") */
  tid: number;
  /** thread group id (process id), when record-tgid was on */
  tgid?: number;
  cpu: number;
  /** timestamp in microseconds of the instance's trace_clock (we use `mono`) */
  ts: number;
  source?: TraceSource;
}

export type TraceEvent =
  | (Common & { kind: 'marker'; text: string })
  | (Common & { kind: 'request_send'; connection: number; unique: number; opcode: number; opname: string; len: number })
  | (Common & { kind: 'request_end'; connection: number; unique: number; len: number; error: number })
  | (Common & { kind: 'ioctl_enter'; fd: number; cmd: number; arg: bigint })
  | (Common & { kind: 'ioctl_exit'; ret: number })
  /** a task (thread or process) created by `parent` (a thread id) */
  | (Common & { kind: 'fork'; parent: number; child: number })
  /** a thread that exited */
  | (Common & { kind: 'task_exit'; pid: number })
  | (Common & { kind: 'other'; event: string; body: string });

const HEAD = /^\s*(.+?)-(\d+)\s+(?:\(\s*(\d+|-+)\)\s+)?\[(\d+)\]\s+(?:\S{4,6}\s+)?(\d+)\.(\d+):\s+([^:]+?):\s?(.*)$/;
const SEND = /^connection (\d+) req (\d+) opcode (\d+)(?: \(([A-Z_0-9]*)\))? len (\d+)\s*$/;
const END = /^connection (\d+) req (\d+) len (\d+) error (-?\d+)\s*$/;
const IOCTL_ENTER = /^sys_ioctl\(fd: (?:0x)?([0-9a-f]+), cmd: (?:0x)?([0-9a-f]+), arg: (?:0x)?([0-9a-f]+)\)\s*$/;
const IOCTL_EXIT = /^sys_ioctl -> (?:0x)?([0-9a-f]+)\s*$/;
// comm may hold spaces: anchor on the last fields
const FORK = /^comm=.* pid=(\d+) child_comm=.* child_pid=(\d+)\s*$/;
const TASK_EXIT = /^comm=.* pid=(\d+) prio=-?\d+(?: group_dead=\w+)?\s*$/;

/** A 64-bit two's complement hex return value as a JS number: 'fffffffffffffffe' -> -2. */
export function hexRet(hex: string): number {
  return Number(BigInt.asIntN(64, BigInt('0x' + hex)));
}

function timestamp(sec: string, frac: string): number {
  // "989.231667" -> microseconds; fractions of other widths (ns clocks) are scaled
  const us = frac.length >= 6 ? Number(frac.slice(0, 6)) : Number(frac.padEnd(6, '0'));
  return Number(sec) * 1_000_000 + us;
}

/** c with the fields of one kind of event added (in place: c is new for every line, and no copy is made). */
function with_<K extends TraceEvent['kind']>(
  c: Common,
  fields: Omit<Extract<TraceEvent, { kind: K }>, keyof Common> & { kind: K },
): Extract<TraceEvent, { kind: K }> {
  // an object spread ({ ...c, kind }) made parsing 4x slower here (V8)
  return Object.assign(c, fields) as Extract<TraceEvent, { kind: K }>;
}

/** Parse one line of tracefs output; null for headers, blank lines and lines we cannot read. */
export function parseTraceLine(line: string): TraceEvent | null {
  if (!line || line.startsWith('#')) return null;
  // The syscall events have no "name:" prefix: "sys_ioctl(...)" / "sys_ioctl -> 0x1".
  // Rewrite them to the generic shape first.
  const m0 = line.includes(': sys_') && /^(\s*.+?-\d+\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[\d+\]\s+(?:\S{4,6}\s+)?\d+\.\d+:\s+)(sys_\w+(?:\(| -> ).*)$/.exec(line);
  let m: RegExpExecArray | null;
  let event: string;
  let body: string;
  if (m0) {
    m = HEAD.exec(m0[1] + 'syscall: ' + m0[2]);
    if (!m) return null;
    event = 'syscall';
    body = m0[2]!;
  } else {
    m = HEAD.exec(line);
    if (!m) return null;
    event = m[7]!;
    body = m[8]!;
  }
  const c: Common = { task: m[1]!.trim(), tid: Number(m[2]), cpu: Number(m[4]), ts: timestamp(m[5]!, m[6]!) };
  // the tgid column reads "(  123)", or "(-------)" when the kernel did not know it
  if (m[3] && m[3].charCodeAt(0) !== 45) c.tgid = Number(m[3]);
  switch (event) {
    case 'tracing_mark_write':
      return with_(c, { kind: 'marker', text: body.trimEnd() });
    case 'fuse_request_send': {
      const s = SEND.exec(body);
      if (!s) break;
      const opcode = Number(s[3]);
      return with_(c, {
        kind: 'request_send',
        connection: Number(s[1]),
        unique: Number(s[2]),
        opcode,
        opname: s[4] || FUSE_OPCODES[opcode] || `FUSE_OP_${opcode}`,
        len: Number(s[5]),
      });
    }
    case 'fuse_request_end': {
      const e = END.exec(body);
      if (!e) break;
      return with_(c, { kind: 'request_end', connection: Number(e[1]), unique: Number(e[2]), len: Number(e[3]), error: Number(e[4]) });
    }
    case 'sched_process_fork': {
      const f = FORK.exec(body);
      if (!f) break;
      return with_(c, { kind: 'fork', parent: Number(f[1]), child: Number(f[2]) });
    }
    case 'sched_process_exit': {
      const x = TASK_EXIT.exec(body);
      if (!x) break;
      return with_(c, { kind: 'task_exit', pid: Number(x[1]) });
    }
    case 'syscall': {
      const en = IOCTL_ENTER.exec(body);
      if (en) return with_(c, { kind: 'ioctl_enter', fd: parseInt(en[1]!, 16), cmd: parseInt(en[2]!, 16), arg: BigInt('0x' + en[3]) });
      const ex = IOCTL_EXIT.exec(body);
      if (ex) return with_(c, { kind: 'ioctl_exit', ret: hexRet(ex[1]!) });
      break;
    }
  }
  return with_(c, { kind: 'other', event, body });
}

/** Parse a whole `trace` / `trace_pipe` text. */
export function parseTrace(text: string, source?: TraceSource): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    const e = parseTraceLine(line);
    if (e) {
      if (source) e.source = source;
      out.push(e);
    }
  }
  return out;
}

export interface RequestError {
  opcode: string;
  unique: number;
  /** negative errno as the kernel reports it (-5) */
  error: number;
  /** 'EIO' */
  code: string;
}

export interface RequestSummary {
  /** sends per opcode name ('FUSE_READ' -> 12) */
  counts: Record<string, number>;
  /** all sends */
  total: number;
  /** requests that ended with error != 0 */
  errors: RequestError[];
  /** uniques sent but not ended within the range */
  unanswered: number[];
  /** bytes the kernel received in replies, per opcode (sum of end len) */
  replyBytes: Record<string, number>;
}

// requests the kernel sends without waiting for an answer
const NO_REPLY = new Set(['FUSE_FORGET', 'FUSE_BATCH_FORGET', 'FUSE_INTERRUPT']);

/** Index of the first marker whose text contains `label`, searching from `from`. */
export function findMarker(events: readonly TraceEvent[], label: string, from = 0): number {
  for (let i = from; i < events.length; i++) {
    const e = events[i]!;
    if (e.kind === 'marker' && e.text.includes(label)) return i;
  }
  return -1;
}

/**
 * Count the requests of one connection, pairing send and end by unique. With markers, only
 * events strictly between the first marker containing `fromMarker` and the next marker
 * containing `toMarker` count (a missing marker throws: a window we cannot find is not empty).
 */
export function summariseRequests(events: readonly TraceEvent[], connection: number, fromMarker?: string, toMarker?: string): RequestSummary {
  let lo = 0;
  let hi = events.length;
  if (fromMarker !== undefined) {
    const i = findMarker(events, fromMarker);
    if (i < 0) throw new Error(`marker "${fromMarker}" not found in trace`);
    lo = i + 1;
  }
  if (toMarker !== undefined) {
    const j = findMarker(events, toMarker, lo);
    if (j < 0) throw new Error(`marker "${toMarker}" not found in trace after "${fromMarker ?? 'start'}"`);
    hi = j;
  }
  const counts: Record<string, number> = {};
  const replyBytes: Record<string, number> = {};
  const sent = new Map<number, string>();
  const errors: RequestError[] = [];
  let total = 0;
  for (let i = lo; i < hi; i++) {
    const e = events[i]!;
    if (e.kind === 'request_send' && e.connection === connection) {
      counts[e.opname] = (counts[e.opname] ?? 0) + 1;
      total++;
      if (!NO_REPLY.has(e.opname)) sent.set(e.unique, e.opname);
    } else if (e.kind === 'request_end' && e.connection === connection) {
      const op = sent.get(e.unique);
      // an end whose send was before the range is not counted (its send is not either)
      if (op === undefined) continue;
      sent.delete(e.unique);
      replyBytes[op] = (replyBytes[op] ?? 0) + e.len;
      if (e.error !== 0) errors.push({ opcode: op, unique: e.unique, error: e.error, code: errnoName(e.error) });
    }
  }
  return { counts, total, errors, unanswered: [...sent.keys()], replyBytes };
}

/** Count of one opcode in a summary (0 when absent). */
export function countOf(s: RequestSummary, opname: string): number {
  return s.counts[opname] ?? 0;
}
