// ReplyTracer: what the server answered, from BPF programs on tracepoints (src/evidence/replies/,
// the fusecert-replies loader). tracefs shows which requests the kernel sent and how they ended;
// it cannot show what a reply said: the open flags and backing id of an OPEN reply, the flags of
// the INIT reply, the id a BACKING_CLOSE named. The loader records, for one connection:
//   req    the kernel's request as it sent it (raw tracepoint on fuse_request_send: nodeid, the
//          first input argument: open flags, the fh a RELEASE names, ...)
//   end    the reply as the kernel parsed it (raw tracepoint on fuse_request_end: error and the
//          output arguments), whichever transport carried it (write, splice, io_uring)
//   reply  the bytes the server wrote to /dev/fuse (read at sys_exit_write/writev), kept only when the
//          write failed (sys_exit_*): a reply the kernel refused is still seen as sent
//   ioctl  BACKING_OPEN/CLOSE with their arguments read at the syscall, and their results
// The loader keeps events in its own memory and writes them only on `flush`, through a marker
// that passes its BPF ring buffer, so a flush holds everything that happened before it (the ring
// buffer is ordered across CPUs). Timestamps are the kernel's monotonic clock, as tracefs's `mono`.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUSE_OPCODES } from './parse.ts';

export const REPLY_TRACER_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'replies');
export const REPLY_TRACER_BIN = path.join(REPLY_TRACER_DIR, 'fusecert-replies');

interface Base {
  /** µs of the monotonic clock (as tracefs's `mono` events) */
  ts: number;
  tid: number;
  tgid: number;
}
/** A request as the kernel sent it. */
export interface KernelRequest extends Base {
  kind: 'kreq';
  connection: number;
  unique: number;
  opcode: number;
  opname: string;
  nodeid: bigint;
  /** the process the request is made for (fuse_in_header.pid) */
  pid: number;
  /** the first input argument (fuse_open_in, fuse_release_in, ...), as far as captured */
  arg: Buffer;
  /** fuse_in_header.len */
  len: number;
}
/** A request's end, with the reply as the kernel parsed it. */
export interface KernelEnd extends Base {
  kind: 'kend';
  connection: number;
  unique: number;
  opcode: number;
  opname: string;
  nodeid: bigint;
  /** fuse_out_header.error as the kernel kept it (-EIO when it refused the reply) */
  error: number;
  /** fuse_out_header.len as the kernel kept it */
  len: number;
  /** output arguments 0 and 1 (CREATE: fuse_entry_out, fuse_open_out) */
  out: [Buffer, Buffer];
  /** their sizes as the kernel kept them: for a variable-size reply (READ) what the server sent */
  sizes: [number, number];
  /**
   * Which transport carried the request, from the kernel's own flag (FR_URING in req->flags):
   * `dev` read(2)/write(2) on /dev/fuse, `ring` a FUSE-over-io_uring ring entry; `dev` also on a
   * kernel without the ring transport. Absent from an older loader's lines.
   */
  transport?: Transport;
}
export type Transport = 'dev' | 'ring';
const TRANSPORTS: Record<string, Transport> = { '1': 'dev', '2': 'ring', '3': 'dev' };
/** The bytes a server wrote to /dev/fuse for a request. */
export interface ServerReply extends Base {
  kind: 'reply';
  connection: number;
  unique: number;
  /** 0: a write of a server process shaped like a reply, for a unique the tracer knows no request of */
  opcode: number;
  opname: string;
  fd: number;
  /** bytes the write(2)/writev(2) carried */
  count: number;
  /** fuse_out_header.len */
  len: number;
  error: number;
  /** what followed the 16-byte header, as far as captured */
  payload: Buffer;
  /** what the write(2) returned (-errno): the tracer records only replies the kernel refused */
  wret?: number;
}
/** A backing ioctl with its argument and result, read at its exit (enterTs = exitTs). */
export interface BackingCall extends Base {
  kind: 'backing';
  cmd: 'open' | 'close';
  enterTs: number;
  exitTs: number;
  devfd: number;
  ret: number;
  /** BACKING_OPEN: the backing file's fd in the server, flags and padding */
  fd?: number;
  flags?: number;
  padding?: bigint;
  /** BACKING_CLOSE: the id it named */
  id?: number;
  /** the argument could not be read */
  fault: boolean;
  /** made by one of the servers (named with addPids/setConnection, or a process one of them forked) */
  server?: boolean;
}
/** A server's fsync, fdatasync, syncfs or sync, seen at its exit (only the servers' calls are recorded). */
export interface SyncCall extends Base {
  kind: 'sync';
  call: 'fsync' | 'fdatasync' | 'syncfs' | 'sync';
  /** the fd argument (0 for sync) */
  fd: number;
  ret: number;
}
export type ReplyEvent = KernelRequest | KernelEnd | ServerReply | BackingCall | SyncCall;

const opname = (op: number) => FUSE_OPCODES[op] ?? `FUSE_OP_${op}`;
const hex = (s: string | undefined) => (s && s !== '-' ? Buffer.from(s, 'hex') : Buffer.alloc(0));
const us = (ns: string) => Number(BigInt(ns)) / 1000;

/** The fields every request line starts with: `KIND TS_NS TID TGID CONN UNIQUE OPCODE`. */
function requestFields(f: string[]) {
  return {
    ts: us(f[1]!),
    tid: Number(f[2]),
    tgid: Number(f[3]),
    connection: Number(f[4]),
    unique: Number(f[5]),
    opcode: Number(f[6]),
    opname: opname(Number(f[6])),
  };
}

/** One line of the loader's output; null for a line that is not an event. */
export function parseReplyLine(line: string): ReplyEvent | null {
  const f = line.split(' ');
  switch (f[0]) {
    case 'req':
      if (f.length < 11) return null;
      return {
        kind: 'kreq',
        ...requestFields(f),
        nodeid: BigInt(f[7]!),
        pid: Number(f[8]),
        arg: hex(f[10]),
        len: Number(f[11] ?? 0),
      };
    case 'end':
      if (f.length < 13) return null;
      return {
        kind: 'kend',
        ...requestFields(f),
        nodeid: BigInt(f[7]!),
        error: Number(f[8]),
        out: [hex(f[10]), hex(f[12])],
        sizes: [Number(f[13] ?? 0), Number(f[14] ?? 0)],
        ...(TRANSPORTS[f[15] ?? ''] ? { transport: TRANSPORTS[f[15]!] } : {}),
        len: Number(f[16] ?? 0),
      };
    case 'reply':
      if (f.length < 13) return null;
      return {
        kind: 'reply',
        ...requestFields(f),
        fd: Number(f[7]),
        count: Number(f[8]),
        len: Number(f[9]),
        error: Number(f[10]),
        payload: hex(f[12]),
        ...(f[13] !== undefined ? { wret: Number(f[13]) } : {}),
      };
    case 'ioctl': {
      if (f.length < 12) return null;
      const cmd = parseInt(f[6]!, 16);
      const open = cmd === 0x4010e501;
      if (!open && cmd !== 0x4004e502) return null;
      const e: BackingCall = {
        kind: 'backing',
        cmd: open ? 'open' : 'close',
        enterTs: us(f[1]!),
        exitTs: us(f[2]!),
        ts: us(f[1]!),
        tid: Number(f[3]),
        tgid: Number(f[4]),
        devfd: Number(f[5]),
        ret: Number(f[7]),
        fault: f[11] === '1',
      };
      if (f[12] !== undefined) e.server = f[12] === '1';
      if (open) {
        e.fd = Number(f[8]);
        e.flags = Number(f[9]);
        e.padding = BigInt(f[10]!);
      } else e.id = Number(f[8]);
      return e;
    }
    case 'sync': {
      if (f.length < 7 || !['fsync', 'fdatasync', 'syncfs', 'sync'].includes(f[4]!)) return null;
      return { kind: 'sync', ts: us(f[1]!), tid: Number(f[2]), tgid: Number(f[3]), call: f[4] as SyncCall['call'], fd: Number(f[5]), ret: Number(f[6]) };
    }
  }
  return null;
}

export interface ReplyTracerStatus {
  available: boolean;
  reason?: string;
  binary: string;
}

/** Whether the loader is built and can run here (root; BPF on tracepoints). */
export function replyTracerStatus(binary = REPLY_TRACER_BIN): ReplyTracerStatus {
  if (process.platform !== 'linux') return { available: false, binary, reason: 'reply evidence unavailable: not Linux' };
  if (process.getuid?.() !== 0) return { available: false, binary, reason: 'reply evidence unavailable: not root (BPF programs need root)' };
  if (!fs.existsSync(binary)) {
    return {
      available: false,
      binary,
      reason: `reply evidence unavailable: ${path.relative(process.cwd(), binary) || binary} is not built (make -C ${path.relative(process.cwd(), REPLY_TRACER_DIR) || REPLY_TRACER_DIR}; needs clang and libbpf-dev: servers/install-deps.sh)`,
    };
  }
  return { available: true, binary };
}

export class ReplyTracerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyTracerError';
  }
}

/** The loader of one connection's reply evidence; a child process of whoever started it. */
export class ReplyTracer {
  private buf = '';
  private lines: string[] = [];
  private waiters: (() => void)[] = [];
  private token = 0n;
  private exited: string | null = null;
  private stderr = '';
  /** every event flushed so far, in ring order (= time order) */
  readonly events: ReplyEvent[] = [];
  /** ring buffer reservations that failed (events lost) */
  lost = 0;
  connection = 0;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      const cut = this.buf.lastIndexOf('\n');
      if (cut < 0) return;
      for (const l of this.buf.slice(0, cut).split('\n')) this.lines.push(l);
      this.buf = this.buf.slice(cut + 1);
      this.wake();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-2000);
    });
    child.on('exit', (code, sig) => {
      this.exited = `fusecert-replies exited (${sig ?? `code ${code}`})${this.stderr ? `: ${this.stderr.trim().split('\n').pop()}` : ''}`;
      this.wake();
    });
    child.on('error', (e) => {
      this.exited = `fusecert-replies could not start: ${e.message}`;
      this.wake();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private wake() {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }

  /** Wait for a line matching `pred` (lines before it are returned too), or fail after ms. */
  private async until(pred: (l: string) => boolean, ms: number, what: string): Promise<string[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex(pred);
      if (i >= 0) return this.lines.splice(0, i + 1);
      if (this.exited) throw new ReplyTracerError(`${what}: ${this.exited}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new ReplyTracerError(`${what}: no answer from fusecert-replies within ${ms} ms`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** Start the loader; it traces nothing of a connection until setConnection (INIT replies of any connection it keeps). */
  static async start(opts: { binary?: string; connection?: number; onStarted?: (pid: number) => void } = {}): Promise<ReplyTracer> {
    const st = replyTracerStatus(opts.binary);
    if (!st.available) throw new ReplyTracerError(st.reason!);
    const args = opts.connection ? ['--connection', String(opts.connection)] : [];
    const child = spawn(st.binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const t = new ReplyTracer(child);
    if (child.pid) opts.onStarted?.(child.pid);
    try {
      await t.until((l) => l === 'ready', 10_000, 'reply evidence unavailable');
    } catch (e) {
      t.close();
      throw e;
    }
    if (opts.connection) t.connection = opts.connection;
    return t;
  }

  /** Trace connection n from now on; `pids`: its server processes (their replies with a unique no request has are kept too). */
  async setConnection(n: number, pids: readonly number[] = []): Promise<void> {
    this.child.stdin!.write(`conn ${n}\n`);
    await this.until((l) => l === `ok conn ${n}`, 5000, 'reply evidence: conn');
    this.connection = n;
    await this.addPids(pids);
  }

  async addPids(pids: readonly number[]): Promise<void> {
    for (const p of pids) {
      this.child.stdin!.write(`pid ${p}\n`);
      await this.until((l) => l === `ok pid ${p}` || l.startsWith(`error pid ${p}`), 5000, 'reply evidence: pid');
    }
  }

  /** Everything the loader recorded until now (new events only). */
  async flush(): Promise<ReplyEvent[]> {
    const tok = ++this.token;
    this.child.stdin!.write(`flush ${tok}\n`);
    const lines = await this.until((l) => l.startsWith(`flushed ${tok} `), 5000, 'reply evidence: flush');
    const last = lines.pop()!;
    const lost = /lost=(\d+)/.exec(last);
    if (lost) this.lost = Number(lost[1]);
    const out: ReplyEvent[] = [];
    for (const l of lines) {
      const e = parseReplyLine(l);
      if (e) out.push(e);
    }
    for (const e of out) this.events.push(e);
    return out;
  }

  /** Drop the events flushed so far (long runs). */
  forget(): void {
    this.events.splice(0);
  }

  /** End the loader: its BPF programs go with it (no pinning, fd-based links). */
  close(): void {
    if (this.exited) return;
    try {
      this.child.stdin!.end();
    } catch {
      /* gone */
    }
    try {
      this.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}
