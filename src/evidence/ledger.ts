// BackingLedger: what the server did with backing ids, from its ioctl tracepoints.
//
// A BACKING_OPEN is `sys_enter_ioctl(cmd 0x4010e501)` followed, in the same thread, by
// `sys_exit_ioctl` whose return is the new id (> 0) or -errno. A BACKING_CLOSE
// (cmd 0x4004e502) returns 0 or -errno. Enter and exit are paired by thread id: a thread is in
// at most one syscall at a time, so the next exit of a thread after an enter is that enter's.
//
// Which id does a BACKING_CLOSE close? The id is a u32 behind the arg pointer in the server's
// memory; the tracepoint only records the pointer. Reading it through /proc/PID/mem is racy
// (we read the trace later, when the server has long reused that stack slot), and pairing
// closes with opens by order is wrong whenever the server closes out of order. So the ledger
// does NOT attribute closes to ids. It does not need to: the kernel removes an id from its
// table only on a successful close of a live id, and refuses anything else (ENOENT for an
// unknown or already closed id, EINVAL for id <= 0). Therefore
//     live ids = successful opens - successful closes
// is exact without knowing which id each close named, and every double close or bogus id
// shows up as a failed close with its errno. (Ids opened before the session started make the
// count lower by their number; sessions open before the first file open, so this is 0.)

import { errnoName } from '../sys/index.ts';
import { BACKING_CLOSE_CMD, BACKING_OPEN_CMD, type TraceEvent } from './parse.ts';
import type { BackingCall } from './replies.ts';

interface IoctlCall {
  tid: number;
  tgid?: number;
  task: string;
  /** the /dev/fuse fd the server used */
  fd: number;
  /** user pointer to the ioctl argument (struct fuse_backing_map / u32 id) */
  arg: bigint;
  enterTs: number;
  /** undefined while the call had not returned when the trace was read */
  exitTs?: number;
  /** raw return value: id or 0 on success, -errno on failure */
  result?: number;
  ok: boolean;
  /** errno name on failure ('ENOENT') */
  code?: string;
}

export interface BackingOpen extends IoctlCall {
  /** the allocated backing id on success */
  id?: number;
  /** the backing file's fd in the server (reply evidence: attachArgs) */
  backingFd?: number;
}
export interface BackingClose extends IoctlCall {
  /** for failures: what the errno means for a close */
  meaning?: string;
  /** the id the close named (reply evidence: attachArgs); unknown from tracefs alone */
  id?: number;
}

export interface RequestLink {
  opcode: string;
  unique: number;
  /** 'thread': the server thread that made the ioctl wrote this request's reply next;
   *  'interval': the only OPEN/CREATE (RELEASE) whose send..end spans the ioctl */
  how: 'thread' | 'interval';
}
export interface Association<T> {
  call: T;
  request?: RequestLink;
  /** when no single request fits: the uniques of all that could */
  candidates?: number[];
}

interface Req {
  unique: number;
  opname: string;
  sendTs: number;
  endTs?: number;
  endTid?: number;
  error?: number;
}

const CLOSE_MEANING: Record<string, string> = {
  ENOENT: 'double close or unknown id',
  EINVAL: 'id <= 0',
  EPERM: 'device not mounted, passthrough not negotiated or no CAP_SYS_ADMIN',
  EFAULT: 'bad argument pointer',
};

export class BackingLedger {
  readonly opens: BackingOpen[] = [];
  readonly closes: BackingClose[] = [];
  private readonly reqs: Req[] = [];
  private readonly endsByTid = new Map<number, { ts: number; unique: number }[]>();

  /**
   * @param events parsed events in time order (a session's merged stream, or a fixture)
   * @param connection when given, only this connection's requests are used for perRequest()
   */
  constructor(
    events: readonly TraceEvent[],
    readonly connection?: number,
  ) {
    const pending = new Map<number, { call: IoctlCall; close: boolean } | null>();
    const byUnique = new Map<number, Req>();
    for (const e of events) {
      switch (e.kind) {
        case 'ioctl_enter': {
          // an earlier call of this thread whose exit never came stays unfinished (exitTs undefined)
          if (e.cmd !== BACKING_OPEN_CMD && e.cmd !== BACKING_CLOSE_CMD) {
            pending.set(e.tid, null);
            break;
          }
          const call: IoctlCall = { tid: e.tid, task: e.task, fd: e.fd, arg: e.arg, enterTs: e.ts, ok: false };
          if (e.tgid !== undefined) call.tgid = e.tgid;
          if (e.cmd === BACKING_OPEN_CMD) this.opens.push(call);
          else this.closes.push(call);
          pending.set(e.tid, { call, close: e.cmd === BACKING_CLOSE_CMD });
          break;
        }
        case 'ioctl_exit': {
          const p = pending.get(e.tid);
          pending.delete(e.tid);
          if (!p) break;
          const call = p.call;
          call.exitTs = e.ts;
          call.result = e.ret;
          if (e.ret < 0) {
            call.ok = false;
            call.code = errnoName(-e.ret);
          } else {
            call.ok = true;
          }
          if (p.close) {
            if (!call.ok) (call as BackingClose).meaning = CLOSE_MEANING[call.code!] ?? 'unexpected error';
          } else if (call.ok) {
            (call as BackingOpen).id = e.ret;
          }
          break;
        }
        case 'request_send':
          if (this.connection !== undefined && e.connection !== this.connection) break;
          if (e.opname === 'FUSE_OPEN' || e.opname === 'FUSE_CREATE' || e.opname === 'FUSE_RELEASE') {
            const r: Req = { unique: e.unique, opname: e.opname, sendTs: e.ts };
            this.reqs.push(r);
            byUnique.set(e.unique, r);
          }
          break;
        case 'request_end': {
          if (this.connection !== undefined && e.connection !== this.connection) break;
          let list = this.endsByTid.get(e.tid);
          if (!list) this.endsByTid.set(e.tid, (list = []));
          list.push({ ts: e.ts, unique: e.unique });
          const r = byUnique.get(e.unique);
          if (r) {
            r.endTs = e.ts;
            r.endTid = e.tid;
            r.error = e.error;
            byUnique.delete(e.unique);
          }
          break;
        }
      }
    }
  }

  /** true once attachArgs gave every close its id */
  byId = false;

  /**
   * Give each call the argument the reply tracer read at the syscall (the id a BACKING_CLOSE
   * named, the fd a BACKING_OPEN registered): the same thread, the nearest exit (the tracer
   * sees a call at its exit; both clocks are the kernel's monotonic one). Once every close has
   * its id the ledger can say which ids are live, not only how many.
   */
  attachArgs(calls: readonly BackingCall[]): void {
    const byTid = new Map<number, BackingCall[]>();
    for (const c of calls) {
      let l = byTid.get(c.tid);
      if (!l) byTid.set(c.tid, (l = []));
      l.push(c);
    }
    const take = (x: IoctlCall, cmd: 'open' | 'close'): BackingCall | undefined => {
      const l = byTid.get(x.tid);
      if (!l) return undefined;
      const at = x.exitTs ?? x.enterTs;
      let best = -1;
      for (let i = 0; i < l.length; i++) {
        if (l[i]!.cmd !== cmd) continue;
        if (best < 0 || Math.abs(l[i]!.exitTs - at) < Math.abs(l[best]!.exitTs - at)) best = i;
      }
      if (best < 0 || Math.abs(l[best]!.exitTs - at) > 2000) return undefined;
      return l.splice(best, 1)[0];
    };
    for (const o of this.opens) {
      const c = take(o, 'open');
      if (c && !c.fault) o.backingFd = c.fd;
    }
    let all = this.closes.length > 0;
    for (const x of this.closes) {
      const c = take(x, 'close');
      if (c && !c.fault) x.id = c.id;
      else all = false;
    }
    this.byId = all || (this.closes.length === 0 && calls.length > 0);
  }

  /** Ids opened and not closed (by id; attachArgs first), in order of opening. */
  liveIds(): number[] {
    const closed = new Set(this.closes.filter((c) => c.ok && c.id !== undefined).map((c) => c.id!));
    return this.opens.filter((o) => o.ok && !closed.has(o.id!)).map((o) => o.id!);
  }

  /** Successful opens minus successful closes: ids the kernel still holds for this server. */
  liveCount(): number {
    return this.opens.filter((o) => o.ok).length - this.closes.filter((c) => c.ok).length;
  }

  /** Live ids at a timestamp (µs, the trace clock), counting calls that had returned by then. */
  liveAt(ts: number): number {
    let n = 0;
    for (const o of this.opens) if (o.ok && o.exitTs! <= ts) n++;
    for (const c of this.closes) if (c.ok && c.exitTs! <= ts) n--;
    return n;
  }

  /** Highest number of live ids at any moment. */
  maxLive(): number {
    const steps: [number, number][] = [];
    for (const o of this.opens) if (o.ok) steps.push([o.exitTs!, +1]);
    for (const c of this.closes) if (c.ok) steps.push([c.exitTs!, -1]);
    // at equal timestamps apply closes first, so the maximum is not overstated
    steps.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cur = 0;
    let max = 0;
    for (const [, d] of steps) {
      cur += d;
      if (cur > max) max = cur;
    }
    return max;
  }

  failedOpens(): BackingOpen[] {
    return this.opens.filter((o) => o.exitTs !== undefined && !o.ok);
  }

  /** ENOENT: double close or unknown id; EINVAL: id <= 0 */
  failedCloses(): BackingClose[] {
    return this.closes.filter((c) => c.exitTs !== undefined && !c.ok);
  }

  /** Calls whose exit was not (yet) in the trace. */
  unfinished(): (BackingOpen | BackingClose)[] {
    return [...this.opens, ...this.closes].filter((c) => c.exitTs === undefined);
  }

  /** Ids opened and never closed, at the end of the trace (0 when closes outnumber opens). */
  neverClosed(): number {
    return Math.max(0, this.liveCount());
  }

  /** Distinct ids handed out (ids are allocated cyclically, so repeats are possible only after 2^31). */
  ids(): number[] {
    return [...new Set(this.opens.filter((o) => o.ok).map((o) => o.id!))];
  }

  /**
   * Associate each BACKING_OPEN with the FUSE OPEN/CREATE request it served, and each
   * BACKING_CLOSE with a RELEASE, where the trace allows. The kernel sends the request, the
   * server thread handling it makes the ioctl, then the same thread writes the reply (which
   * fires fuse_request_end in that thread). So the first reply that thread writes after the
   * ioctl returned names the request, if that request is of the right kind and was sent
   * before the ioctl started. Failing that (servers that hand replies to another thread), a
   * request of the right kind whose send..end interval encloses the ioctl is taken when it is
   * the only one; otherwise the candidates are listed.
   */
  perRequest(): { opens: Association<BackingOpen>[]; closes: Association<BackingClose>[] } {
    const reqByUnique = new Map(this.reqs.map((r) => [r.unique, r] as const));
    const link = <T extends IoctlCall>(call: T, kinds: string[]): Association<T> => {
      if (call.exitTs === undefined) return { call };
      const ends = this.endsByTid.get(call.tid) ?? [];
      const next = ends.find((x) => x.ts >= call.exitTs!);
      if (next) {
        const r = reqByUnique.get(next.unique);
        if (r && kinds.includes(r.opname) && r.sendTs <= call.enterTs) {
          return { call, request: { opcode: r.opname, unique: r.unique, how: 'thread' } };
        }
      }
      const cands = this.reqs.filter((r) => kinds.includes(r.opname) && r.sendTs <= call.enterTs && (r.endTs === undefined || r.endTs >= call.exitTs!));
      if (cands.length === 1) return { call, request: { opcode: cands[0]!.opname, unique: cands[0]!.unique, how: 'interval' } };
      return cands.length ? { call, candidates: cands.map((r) => r.unique) } : { call };
    };
    return {
      opens: this.opens.map((o) => link(o, ['FUSE_OPEN', 'FUSE_CREATE'])),
      closes: this.closes.map((c) => link(c, ['FUSE_RELEASE'])),
    };
  }

  /** Count of OPEN/CREATE requests seen (for "one id per open" checks). */
  openRequests(): number {
    return this.reqs.filter((r) => r.opname !== 'FUSE_RELEASE').length;
  }

  summary(): string {
    const okOpens = this.opens.filter((o) => o.ok).length;
    const okCloses = this.closes.filter((c) => c.ok).length;
    const fo = this.failedOpens();
    const fc = this.failedCloses();
    const byCode = (xs: IoctlCall[]) => {
      const m = new Map<string, number>();
      for (const x of xs) m.set(x.code!, (m.get(x.code!) ?? 0) + 1);
      return [...m].map(([k, v]) => `${v} ${k}`).join(', ');
    };
    let s = `backing ids: ${okOpens} opened, ${okCloses} closed, ${this.liveCount()} live (max ${this.maxLive()})`;
    if (this.byId) {
      const live = this.liveIds();
      if (live.length) s += ` [live: ${live.slice(0, 10).join(', ')}${live.length > 10 ? ', ...' : ''}]`;
    }
    if (fo.length) s += `; ${fo.length} failed opens (${byCode(fo)})`;
    if (fc.length) {
      s += `; ${fc.length} failed closes (${byCode(fc)})`;
      const named = fc.filter((c) => c.id !== undefined).map((c) => c.id);
      if (named.length) s += ` of id ${[...new Set(named)].slice(0, 10).join(', ')}`;
    }
    const u = this.unfinished().length;
    if (u) s += `; ${u} calls without a return in the trace`;
    return s;
  }
}
