// Timeline: one connection's requests joined with what the server answered and what it did with
// backing ids, from the reply tracer's events (replies.ts). Each request carries the kernel's
// view (sent with nodeid and input argument; ended with error and the output arguments as the
// kernel parsed them) and the server's (the bytes it wrote), joined by unique. The diagnosis
// module reads it; a failure's excerpt is rendered from it.
import { errnoName } from '../sys/index.ts';
import type { BackingCall, KernelEnd, KernelRequest, ReplyEvent, ServerReply } from './replies.ts';
import {
  decodeAttrOut,
  decodeEntryOut,
  decodeInitOut,
  decodeOpenIn,
  decodeOpenOut,
  decodeReleaseIn,
  fopenNames,
  FOPEN,
  type Attr,
  type InitOut,
  type OpenIn,
  type OpenOut,
  type ReleaseIn,
} from './wire.ts';

const OPENS = new Set(['FUSE_OPEN', 'FUSE_CREATE', 'FUSE_TMPFILE']);
const RELEASES = new Set(['FUSE_RELEASE']);
// requests whose nodeid is the parent directory: the inode is the one the reply's fuse_entry_out names
const ENTRY_REPLIES = new Set(['FUSE_CREATE', 'FUSE_TMPFILE', 'FUSE_LOOKUP', 'FUSE_MKNOD', 'FUSE_MKDIR', 'FUSE_SYMLINK', 'FUSE_LINK']);

export interface RequestRecord {
  unique: number;
  opname: string;
  send?: KernelRequest;
  end?: KernelEnd;
  reply?: ServerReply;
  /** the inode a request is about: its nodeid, for CREATE/TMPFILE the new inode's (from the reply) */
  nodeid?: bigint;
  /** OPEN, CREATE, TMPFILE: the user's flags and the reply's open_flags and backing id */
  openIn?: OpenIn;
  openOut?: OpenOut;
  /** RELEASE, FLUSH: the file handle named */
  fh?: bigint;
  release?: ReleaseIn;
  init?: InitOut;
  /** GETATTR, SETATTR, LOOKUP, CREATE: the attributes the reply gave */
  attr?: Attr;
  attrValidMs?: number;
  /** a RELEASE the kernel sent for an open it refused: same thread as the OPEN, no FLUSH before it */
  refusedOpen?: boolean;
  /** for an OPEN: the RELEASE that answered its refusal */
  refusedBy?: RequestRecord;
}

const ENOTCONN = 107;
const ECONNABORTED = 103;

export interface TransportCounts {
  /** the transport INIT came over (null: INIT not seen) */
  init: 'dev' | 'ring' | null;
  ring: number;
  dev: number;
  unknown: number;
  /** ended by the kernel without a reply (ENOTCONN, ECONNABORTED) */
  unanswered: number;
  /** the first few requests of each kind, for a failure's reason */
  firstDev: RequestRecord[];
  firstRing: RequestRecord[];
}

/** When each backing id was opened and closed, from the ioctls' arguments and results. */
export interface IdLife {
  id: number;
  opened?: BackingCall;
  closed?: BackingCall;
  /** failed closes that named it (double close: ENOENT) */
  failedCloses: BackingCall[];
}

const kernelOpenOut = (r: RequestRecord): OpenOut | undefined => {
  const out = r.end?.out;
  if (!out) return undefined;
  return decodeOpenOut(r.opname === 'FUSE_OPEN' ? out[0] : out[1]);
};
const sentOpenOut = (r: RequestRecord): OpenOut | undefined => {
  const p = r.reply?.payload;
  if (!p) return undefined;
  return decodeOpenOut(r.opname === 'FUSE_OPEN' ? p : p.subarray(128));
};

/**
 * The inode and attributes a fuse_entry_out names: requests that create or look up a name carry
 * the parent directory's nodeid, so the inode they are about is the reply's.
 */
function takeEntry(r: RequestRecord, out: Buffer | undefined): void {
  const e = decodeEntryOut(out);
  if (!e) return;
  r.attr = e.attr;
  r.attrValidMs = e.attrValidMs;
  r.nodeid = e.nodeid;
}

export class Timeline {
  readonly requests: RequestRecord[] = [];
  readonly byUnique = new Map<number, RequestRecord>();
  readonly backing: BackingCall[] = [];
  readonly ids = new Map<number, IdLife>();
  /** the INIT reply of this connection, when the tracer saw it */
  init?: RequestRecord;
  /** replies the server wrote for a unique no request of the connection has (the kernel refuses them: ENOENT) */
  readonly strays: ServerReply[] = [];

  constructor(
    events: readonly ReplyEvent[],
    readonly connection: number,
    /** server processes: backing ioctls of other processes are left out */
    serverPids?: readonly number[],
  ) {
    const pids = serverPids ? new Set(serverPids) : null;
    // a connection never reuses a unique (fuse_get_unique counts up), so it keys the request
    const rec = (unique: number, opname: string): RequestRecord => {
      let r = this.byUnique.get(unique);
      if (!r) {
        r = { unique, opname };
        this.byUnique.set(unique, r);
        this.requests.push(r);
      }
      return r;
    };
    const lastFlushOf = new Map<bigint, RequestRecord>();
    for (const e of events) {
      switch (e.kind) {
        case 'kreq': {
          if (e.connection !== connection) break;
          const r = rec(e.unique, e.opname);
          r.send = e;
          if (!ENTRY_REPLIES.has(r.opname)) r.nodeid = e.nodeid;
          if (OPENS.has(e.opname)) r.openIn = decodeOpenIn(e.arg, e.opname !== 'FUSE_OPEN');
          if (RELEASES.has(e.opname)) {
            r.release = decodeReleaseIn(e.arg);
            r.fh = r.release?.fh;
          }
          if (e.opname === 'FUSE_FLUSH' && e.arg.length >= 8) {
            r.fh = e.arg.readBigUInt64LE(0);
            lastFlushOf.set(r.fh, r);
          }
          break;
        }
        case 'kend': {
          if (e.connection !== connection) break;
          const r = rec(e.unique, e.opname);
          r.end = e;
          this.decodeReply(r);
          break;
        }
        case 'reply': {
          // the tracer names only INIT replies (opcode 0 otherwise): the unique says which request
          const known = this.byUnique.get(e.unique);
          const named: ServerReply = e.opcode === 0 && known ? { ...e, opcode: known.send?.opcode ?? 0, opname: known.opname } : e;
          // uniques are per connection: a reply is ours only if one of our server processes wrote it
          if (named.connection !== connection || (pids && !pids.has(named.tgid) && named.opname !== 'FUSE_INIT')) break;
          if (!known && named.opcode === 0) {
            if (named.unique !== 0) this.strays.push(named); // unique 0: a notification, not a reply
            break;
          }
          const r = rec(named.unique, named.opname);
          r.reply = named;
          this.decodeReply(r);
          break;
        }
        case 'backing': {
          if (pids && !pids.has(e.tgid)) break;
          this.backing.push(e);
          if (e.cmd === 'open' && e.ret > 0) this.life(e.ret).opened = e;
          if (e.cmd === 'close' && e.id !== undefined) {
            const l = this.life(e.id);
            if (e.ret === 0) l.closed = e;
            else l.failedCloses.push(e);
          }
          break;
        }
      }
    }
    // refused opens: the kernel releases the handle of an open it refused at once, from the
    // opener's thread, with no FLUSH (a close(2) flushes first, unless the reply said NOFLUSH)
    const openByFh = new Map<bigint, RequestRecord>();
    for (const r of this.requests) {
      if (OPENS.has(r.opname) && r.openOut && r.end?.error === 0) openByFh.set(r.openOut.fh, r);
      if (r.opname === 'FUSE_RELEASE' && r.fh !== undefined) {
        const o = openByFh.get(r.fh);
        if (!o?.send || !r.send) continue;
        openByFh.delete(r.fh);
        const flushed = lastFlushOf.get(r.fh);
        const flushedAfterOpen = flushed?.send && flushed.send.ts >= o.send.ts;
        if (r.send.tid === o.send.tid && !flushedAfterOpen && !(o.openOut!.openFlags & FOPEN.NOFLUSH)) {
          r.refusedOpen = true;
          o.refusedBy = r;
        }
      }
    }
    this.init = this.requests.find((r) => r.opname === 'FUSE_INIT' && r.init);
  }

  private life(id: number): IdLife {
    let l = this.ids.get(id);
    if (!l) this.ids.set(id, (l = { id, failedCloses: [] }));
    return l;
  }

  private decodeReply(r: RequestRecord) {
    const kernelOk = r.end && r.end.error === 0;
    const payload = r.reply?.payload;
    switch (r.opname) {
      case 'FUSE_OPEN':
        // the kernel's parse when it accepted the reply, else what the server sent
        r.openOut = (kernelOk ? kernelOpenOut(r) : undefined) ?? sentOpenOut(r) ?? kernelOpenOut(r);
        break;
      case 'FUSE_INIT':
        r.init = (kernelOk ? decodeInitOut(r.end!.out[0]) : undefined) ?? decodeInitOut(payload);
        break;
      case 'FUSE_GETATTR':
      case 'FUSE_SETATTR': {
        const a = decodeAttrOut(kernelOk ? r.end!.out[0] : payload);
        if (a) {
          r.attr = a.attr;
          r.attrValidMs = a.validMs;
        }
        break;
      }
      case 'FUSE_CREATE':
      case 'FUSE_TMPFILE':
        r.openOut = (kernelOk ? kernelOpenOut(r) : undefined) ?? sentOpenOut(r) ?? kernelOpenOut(r);
        takeEntry(r, kernelOk ? r.end!.out[0] : payload); // a fuse_entry_out comes first
        break;
      case 'FUSE_LOOKUP':
      case 'FUSE_MKNOD':
      case 'FUSE_MKDIR':
      case 'FUSE_SYMLINK':
      case 'FUSE_LINK':
        takeEntry(r, kernelOk ? r.end!.out[0] : payload);
        break;
    }
  }

  /**
   * Which transport carried the connection's requests, from each request's end (the kernel's
   * FR_URING flag, read by the reply tracer). INIT always travels over /dev/fuse (a server sets up
   * its ring only after the INIT reply), so the requests counted are those that ended after INIT's
   * end; the ones the kernel ended itself without a reply (ENOTCONN, ECONNABORTED: an aborted or
   * unmounted connection) are counted apart. `unknown`: ends from a loader that does not say.
   */
  transports(): TransportCounts {
    const initRec = this.init ?? this.requests.find((r) => r.opname === 'FUSE_INIT' && r.end);
    const initEnd = initRec?.end?.ts ?? null;
    const c: TransportCounts = { init: initRec?.end?.transport ?? null, ring: 0, dev: 0, unknown: 0, unanswered: 0, firstDev: [], firstRing: [] };
    for (const r of this.requests) {
      const e = r.end;
      if (!e || r.opname === 'FUSE_INIT' || (initEnd !== null && e.ts < initEnd)) continue;
      if (e.error === -ENOTCONN || e.error === -ECONNABORTED) {
        c.unanswered++;
        continue;
      }
      if (e.transport === 'ring') {
        c.ring++;
        if (c.firstRing.length < 3) c.firstRing.push(r);
      } else if (e.transport === 'dev') {
        c.dev++;
        if (c.firstDev.length < 3) c.firstDev.push(r);
      } else c.unknown++;
    }
    return c;
  }

  /** Requests sent at or after ts (µs), in order. */
  since(ts: number): RequestRecord[] {
    return this.requests.filter((r) => (r.send?.ts ?? r.end?.ts ?? r.reply?.ts ?? 0) >= ts);
  }

  /** Was backing id `id` registered at time ts? null when the tracer never saw it opened (before the session). */
  liveAt(id: number, ts: number): boolean | null {
    const l = this.ids.get(id);
    if (!l?.opened) return l?.closed ? l.closed.exitTs > ts : null;
    if (l.opened.exitTs > ts) return false;
    return !l.closed || l.closed.exitTs > ts;
  }

  /** Ids opened and not closed at the end of what was seen. */
  liveIds(): number[] {
    return [...this.ids.values()].filter((l) => l.opened && !l.closed).map((l) => l.id);
  }

  /** The open (OPEN/CREATE) record whose reply handed out fh. */
  openOfFh(fh: bigint): RequestRecord | undefined {
    return this.requests.find((r) => OPENS.has(r.opname) && r.openOut?.fh === fh);
  }
}

/** 'OPEN reply (unique 41): PASSTHROUGH|KEEP_CACHE (0x82), backing id 3' */
export function describeOpenReply(r: RequestRecord): string {
  const op = r.opname.replace('FUSE_', '');
  const o = r.openOut;
  if (!o) return `the ${op} reply (unique ${r.unique})`;
  const pt = (o.openFlags & FOPEN.PASSTHROUGH) !== 0;
  return `the ${op} reply (unique ${r.unique}) carried ${fopenNames(o.openFlags)} (0x${o.openFlags.toString(16)})${pt ? ` with backing id ${o.backingId}` : ''}`;
}

const rel = (ts: number, t0: number) => `+${((ts - t0) / 1000).toFixed(3)} ms`;

/** The lines of a failure's excerpt: requests with their replies and the backing ioctls, in time order. */
export function renderExcerpt(tl: Timeline, fromTs: number, opts: { max?: number; untilTs?: number } = {}): string[] {
  const until = opts.untilTs ?? Infinity;
  type Item = { ts: number; text: string };
  const items: Item[] = [];
  for (const r of tl.requests) {
    const ts = r.send?.ts ?? r.reply?.ts ?? r.end?.ts ?? 0;
    if (ts < fromTs || ts > until) continue;
    const op = r.opname.replace('FUSE_', '');
    let s = `${op} unique ${r.unique}`;
    if (r.send) s += ` nodeid ${r.send.nodeid}`;
    if (r.openIn) s += ` flags 0x${r.openIn.flags.toString(8)}`;
    if (r.fh !== undefined) s += ` fh ${r.fh}`;
    // a `reply` is kept only when the kernel refused it: then it is what the server wrote
    if (r.reply)
      s += `; server wrote error ${r.reply.error}, len ${r.reply.len}${r.reply.len !== r.reply.count ? ` in ${r.reply.count} bytes` : ''}${r.reply.wret ? `, refused: ${errnoName(r.reply.wret)}` : ''}`;
    else if (r.end) s += `; replied${r.opname === 'FUSE_READ' ? ` ${r.end.sizes[0]} bytes` : ''}`;
    if (r.openOut)
      s += `, ${fopenNames(r.openOut.openFlags)} (0x${r.openOut.openFlags.toString(16)})${r.openOut.openFlags & FOPEN.PASSTHROUGH ? ` backing id ${r.openOut.backingId}` : ''} fh ${r.openOut.fh}`;
    if (r.attr) s += `, size ${r.attr.size} mtime ${r.attr.mtime}.${String(r.attr.mtimensec).padStart(9, '0')} mode ${r.attr.mode.toString(8)}`;
    if (r.init) s += `, INIT ${r.init.major}.${r.init.minor} max_stack_depth ${r.init.maxStackDepth}`;
    if (r.end) s += `; kernel ended it ${r.end.error ? errnoName(r.end.error) : 'OK'}${r.end.transport === 'ring' ? ' (io_uring)' : ''}`;
    else s += '; no end seen';
    if (r.refusedOpen) s += ' (the kernel releasing a refused open)';
    items.push({ ts, text: s });
  }
  for (const b of tl.backing) {
    if (b.enterTs < fromTs || b.enterTs > until) continue;
    const res = b.ret < 0 ? errnoName(b.ret) : b.cmd === 'open' ? `id ${b.ret}` : 'OK';
    items.push({
      ts: b.enterTs,
      text: b.cmd === 'open' ? `BACKING_OPEN fd ${b.fd} (thread ${b.tid}) -> ${res}` : `BACKING_CLOSE id ${b.id} (thread ${b.tid}) -> ${res}`,
    });
  }
  items.sort((a, b) => a.ts - b.ts);
  const t0 = items[0]?.ts ?? fromTs;
  const max = opts.max ?? 40;
  const lines = items.map((i) => `${rel(i.ts, t0)}  ${i.text}`);
  if (lines.length <= max) return lines;
  return [...lines.slice(0, max / 2), `... ${lines.length - max} more ...`, ...lines.slice(-max / 2)];
}
