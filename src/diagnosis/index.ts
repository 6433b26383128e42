// Diagnosis: a failure and its timeline -> what the server did and the rule it broke. One module
// for every clause: the clause says what the user saw (the syscall, the path in the mount, the
// errno or the wrong bytes); this module reads the connection's timeline (requests, the server's
// replies, backing ioctls with their arguments: evidence/timeline.ts) since the clause began and
// names the reply or the call that broke a rule of the kernel, with its SPEC section and its row of
// docs/kernel-rules.md. Findings are facts read off the timeline, never guesses from an errno: a
// rule is named only when the reply or call that breaks it is in the timeline.
import { errnoName } from '../sys/index.ts';
import { describeOpenReply, type RequestRecord, type Timeline } from '../evidence/timeline.ts';
import { decodeReadIn, decodeSetattrIn, FATTR, FOPEN, FOPEN_PASSTHROUGH_MASK, fopenNames, INIT_BIT, type InitOut } from '../evidence/wire.ts';

export interface Finding {
  /** what the server did, in the contract's words */
  text: string;
  /** SPEC section and KERNEL-RULES row */
  rule: string;
  /** the request or call it is about (µs, for ordering) */
  ts: number;
  unique?: number;
  /** lower comes first: a refused reply before its consequences */
  rank: number;
}

const has = (flags: number, f: number) => (flags & f) !== 0;
const isPt = (r: RequestRecord) => !!r.openOut && has(r.openOut.openFlags, FOPEN.PASSTHROUGH);
const OPENS = new Set(['FUSE_OPEN', 'FUSE_CREATE', 'FUSE_TMPFILE']);
const sentAt = (r: RequestRecord) => r.send?.ts ?? r.reply?.ts ?? r.end?.ts ?? 0;
const bit = (f: bigint, name: string) => ((f >> BigInt(INIT_BIT[name]!)) & 1n) === 1n;
const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;

/** What was open on each inode just before `before` (µs): accepted opens not yet released. */
function openFilesOf(tl: Timeline, nodeid: bigint, before: number): RequestRecord[] {
  const open = new Map<bigint, RequestRecord>();
  for (const r of tl.requests) {
    if (sentAt(r) >= before) break;
    if (OPENS.has(r.opname) && r.nodeid === nodeid && r.openOut && r.end?.error === 0 && !r.refusedBy) open.set(r.openOut.fh, r);
    if (r.opname === 'FUSE_RELEASE' && r.fh !== undefined && open.get(r.fh)?.nodeid === nodeid) open.delete(r.fh);
  }
  return [...open.values()];
}

/** What the kernel grants for an INIT reply (inode.c:process_init_reply): passthrough needs all four. */
export function grantedByInit(i: InitOut): boolean {
  return i.initExt && bit(i.flags64, 'PASSTHROUGH') && !bit(i.flags64, 'WRITEBACK_CACHE') && i.maxStackDepth >= 1 && i.maxStackDepth <= 2;
}

/** Is passthrough granted on this connection, as far as the INIT reply tells? null: INIT not seen. */
function passthroughGranted(tl: Timeline): boolean | null {
  const i = tl.init?.init;
  return i ? grantedByInit(i) : null;
}

/** Why the kernel refused an OPEN/CREATE reply it parsed (the user's open(2) got EIO). */
export function whyRefused(tl: Timeline, r: RequestRecord): Finding | null {
  const o = r.openOut;
  if (!o) return null;
  const at = sentAt(r);
  const f = (text: string, rule: string): Finding => ({ text, rule, ts: at, unique: r.unique, rank: 1 });
  const d = describeOpenReply(r);
  if (isPt(r)) {
    const extra = o.openFlags & ~FOPEN_PASSTHROUGH_MASK;
    if (extra) {
      return f(
        `${d}; only DIRECT_IO, PARALLEL_DIRECT_WRITES and NOFLUSH may accompany FOPEN_PASSTHROUGH, so the kernel refused it (${fopenNames(extra)} is not allowed)`,
        'SPEC §3; KERNEL-RULES D5',
      );
    }
    if (o.backingId <= 0) return f(`${d}; a backing id must be > 0, so the kernel refused it`, 'SPEC §3; KERNEL-RULES D7');
    if (passthroughGranted(tl) === false)
      return f(`${d} on a connection where passthrough was not granted at INIT, so the kernel refused it`, 'SPEC §1, §3; KERNEL-RULES D6');
    const life = tl.ids.get(o.backingId);
    const end = r.end?.ts ?? at;
    if (life?.closed && life.closed.exitTs <= end + 1) {
      return f(
        `${d}, but the server closed id ${o.backingId} (BACKING_CLOSE in thread ${life.closed.tid}, ${ms(end - life.closed.exitTs)} before the kernel took the reply) before the kernel looked it up: an id must stay registered while the inode has passthrough opens`,
        'SPEC §3; KERNEL-RULES C5, D8',
      );
    }
    if (life === undefined && tl.backing.length && !tl.backing.some((b) => b.cmd === 'open' && b.ret === o.backingId)) {
      // the tracer saw the server's ioctls and none returned this id
      return f(`${d}, an id no BACKING_OPEN of the server returned`, 'SPEC §3; KERNEL-RULES D8');
    }
  }
  const nodeid = r.nodeid;
  if (nodeid === undefined) return null;
  const held = openFilesOf(tl, nodeid, at);
  const ptHeld = held.filter(isPt);
  const cached = held.filter((h) => !isPt(h) && !has(h.openOut!.openFlags, FOPEN.DIRECT_IO));
  const list = (xs: RequestRecord[]) =>
    xs.map((x) => `${x.opname.replace('FUSE_', '')} unique ${x.unique}${isPt(x) ? ` with backing id ${x.openOut!.backingId}` : ''}`).join(', ');
  if (!isPt(r) && ptHeld.length) {
    const dio = has(o.openFlags, FOPEN.DIRECT_IO) ? ' (DIRECT_IO alone takes no passthrough either)' : '';
    return f(
      `${d} while nodeid ${nodeid} was open in passthrough (${list(ptHeld)}): an open of an inode in passthrough mode must carry FOPEN_PASSTHROUGH and the inode's backing id${dio}, so the kernel refused it (mixed io modes)`,
      'SPEC §4.1; KERNEL-RULES E1',
    );
  }
  if (isPt(r) && cached.length) {
    return f(
      `${d} while nodeid ${nodeid} had cached opens (${list(cached)}): a passthrough open needs the inode to have no cached opens, so the kernel refused it (mixed io modes)`,
      'SPEC §4.2; KERNEL-RULES E2',
    );
  }
  const other = ptHeld.find((h) => h.openOut!.backingId !== o.backingId);
  if (isPt(r) && other) {
    return f(
      `${d} while nodeid ${nodeid} was open in passthrough on backing id ${other.openOut!.backingId} (${list([other])}): the server opened another backing id for the same inode instead of reusing its id, and two ids are two backing objects, so the kernel refused it (one id per inode)`,
      'SPEC §4.3; KERNEL-RULES E3',
    );
  }
  return null;
}

/** The INIT reply's mistakes that silently switch passthrough off (or, with KILLPRIV, privilege clearing). */
function initFindings(tl: Timeline, claimsPassthrough: boolean, message: string): Finding[] {
  const r = tl.init;
  const i = r?.init;
  if (!r || !i) return [];
  const f = (text: string, rule: string, rank = 0): Finding => ({ text, rule, ts: sentAt(r), unique: r.unique, rank });
  const asked = bit(i.flags64, 'PASSTHROUGH');
  const out: Finding[] = [];
  if (asked && !i.initExt)
    out.push(
      f(
        `the INIT reply (unique ${r.unique}) set FUSE_PASSTHROUGH in flags2 without FUSE_INIT_EXT in flags, so the kernel never read flags2 and passthrough is off`,
        'SPEC §1; KERNEL-RULES A2',
      ),
    );
  else if (asked && bit(i.flags64, 'WRITEBACK_CACHE'))
    out.push(
      f(
        `the INIT reply (unique ${r.unique}) asked for FUSE_WRITEBACK_CACHE together with FUSE_PASSTHROUGH, so the kernel granted no passthrough`,
        'SPEC §1; KERNEL-RULES A4',
      ),
    );
  else if (asked && (i.maxStackDepth < 1 || i.maxStackDepth > 2))
    out.push(
      f(
        `the INIT reply (unique ${r.unique}) gave max_stack_depth ${i.maxStackDepth}, outside 1..2, so the kernel granted no passthrough`,
        'SPEC §1; KERNEL-RULES A3',
      ),
    );
  else if (!asked && claimsPassthrough)
    out.push(
      f(`the INIT reply (unique ${r.unique}) did not ask for FUSE_PASSTHROUGH, although the manifest claims passthrough`, 'SPEC §1; KERNEL-RULES A2', 3),
    );
  const kp = ['HANDLE_KILLPRIV_V2', 'HANDLE_KILLPRIV'].find((n) => bit(i.flags64, n));
  if (kp && /set-user-ID|set-group-ID|setuid|setgid|suid|sgid/i.test(message))
    out.push(
      f(
        `the INIT reply (unique ${r.unique}) negotiated FUSE_${kp}: the kernel then leaves clearing set-user-ID/set-group-ID on write to the server${asked ? ', which never sees a passthrough write' : ''}`,
        'SPEC §5; KERNEL-RULES F9',
        1,
      ),
    );
  return out;
}

/** The reply for `r` that the kernel refused, or never got (by `nowTs`, after a second). */
function replyFindings(r: RequestRecord, nowTs: number): Finding | null {
  const op = r.opname.replace('FUSE_', '');
  const at = sentAt(r);
  const rep = r.reply;
  const wrote = rep?.wret ? ` (the write returned ${errnoName(rep.wret)})` : '';
  if (rep && rep.error !== 0 && (rep.error < -511 || rep.error > 0)) {
    return {
      text: `the server answered ${op} (unique ${r.unique}) with error ${rep.error}, outside -511..0, so the kernel refused the reply${wrote} and the request waits for another`,
      rule: 'SPEC §3; FUSE protocol',
      ts: at,
      unique: r.unique,
      rank: 1,
    };
  }
  if (rep && rep.error === 0 && r.end && r.end.error !== 0 && rep.len === rep.count) {
    const need = op === 'OPEN' ? ' (fuse_open_out is 16 bytes)' : '';
    return {
      text: `the server answered ${op} (unique ${r.unique}) with ${rep.len - 16} bytes after the header${need}; the kernel refused the reply${wrote} and ended the request with ${errnoName(r.end.error)}`,
      rule: 'SPEC §3; FUSE protocol',
      ts: at,
      unique: r.unique,
      rank: 1,
    };
  }
  if (rep && rep.len !== rep.count) {
    return {
      text: `the server's ${op} reply (unique ${r.unique}) says len ${rep.len} in a write of ${rep.count} bytes, so the kernel refused it`,
      rule: 'FUSE protocol',
      ts: at,
      unique: r.unique,
      rank: 1,
    };
  }
  // a request in flight when the failure was read is not unanswered (RELEASE trails close())
  if (r.send && !r.end && !rep && nowTs - at > 1_000_000 && !['FUSE_FORGET', 'FUSE_BATCH_FORGET', 'FUSE_INTERRUPT'].includes(r.opname)) {
    return {
      text: `the server never answered ${op} (unique ${r.unique}) with a reply the kernel took`,
      rule: 'FUSE protocol',
      ts: at,
      unique: r.unique,
      rank: 2,
    };
  }
  return null;
}

/** Replies for uniques no request has: the kernel refuses them (ENOENT) and the request waits on. */
function strayFindings(tl: Timeline, from: number): Finding[] {
  return tl.strays
    .filter((s) => s.ts >= from)
    .slice(0, 1)
    .map((s) => {
      const waiting = tl.requests.filter(
        (r) => r.send && !r.end && !r.reply && sentAt(r) <= s.ts && !['FUSE_FORGET', 'FUSE_BATCH_FORGET', 'FUSE_INTERRUPT'].includes(r.opname),
      );
      const w = waiting.length ? ` while ${waiting.map((r) => `${r.opname.replace('FUSE_', '')} (unique ${r.unique})`).join(', ')} waited for its reply` : '';
      return {
        text: `the server wrote a reply for unique ${s.unique} (error ${s.error}, ${s.len} bytes), which no request of the connection has, so the kernel refused it${s.wret ? ` (${errnoName(s.wret)})` : ''}${w}`,
        rule: 'FUSE protocol (fuse_out_header.unique)',
        ts: s.ts,
        ...(waiting[0] ? { unique: waiting[0].unique } : {}),
        rank: 1,
      };
    });
}

/** Requests the kernel ended itself because the connection went away under them. */
function abortFindings(tl: Timeline, from: number): Finding[] {
  const gone = tl.requests.filter((r) => sentAt(r) >= from && r.end && !r.reply && (r.end.error === -103 || r.end.error === -107));
  if (!gone.length) return [];
  const r = gone[0]!;
  return [
    {
      text: `the connection was aborted while ${r.opname.replace('FUSE_', '')} (unique ${r.unique}) waited for the server's reply: the kernel ended it with ${errnoName(r.end!.error)} (the server closed every /dev/fuse fd or died)`,
      rule: 'SPEC §5a; KERNEL-RULES I1',
      ts: sentAt(r),
      unique: r.unique,
      rank: 2,
    },
  ];
}

/** A failed BACKING_OPEN followed by an OPEN error: the server passed the refusal on. */
function fallbackFindings(tl: Timeline, from: number): Finding[] {
  const out: Finding[] = [];
  for (const b of tl.backing) {
    if (b.enterTs < from || b.cmd !== 'open' || b.ret >= 0) continue;
    const r = tl.requests.find((x) => OPENS.has(x.opname) && x.end && x.end.error !== 0 && x.end.tid === b.tid && x.end.ts >= b.exitTs);
    if (!r) continue;
    out.push({
      text: `the server's BACKING_OPEN (thread ${b.tid}) failed with ${errnoName(b.ret)} and it answered ${r.opname.replace('FUSE_', '')} (unique ${r.unique}) with ${errnoName(r.end!.error)} instead of serving the open without passthrough`,
      rule: b.ret === -1 || errnoName(b.ret) === 'EPERM' ? 'SPEC §1, §2; KERNEL-RULES B4 (check what INIT granted)' : 'SPEC §2, BKG-006; KERNEL-RULES B10',
      ts: b.enterTs,
      unique: r.unique,
      rank: 1,
    });
  }
  return out;
}

function closeFindings(tl: Timeline, from: number): Finding[] {
  const out: Finding[] = [];
  for (const b of tl.backing) {
    if (b.enterTs < from || b.cmd !== 'close' || b.ret === 0) continue;
    const life = b.id !== undefined ? tl.ids.get(b.id) : undefined;
    const code = errnoName(b.ret);
    let why = '';
    if (code === 'ENOENT' && life?.closed && life.closed.exitTs <= b.enterTs)
      why = `: id ${b.id} had been closed already (thread ${life.closed.tid}, ${ms(b.enterTs - life.closed.exitTs)} earlier): a double close`;
    else if (code === 'ENOENT') why = `: id ${b.id} was never opened on this connection`;
    else if (code === 'EINVAL') why = `: id ${b.id} is <= 0`;
    out.push({
      text: `the server's BACKING_CLOSE of id ${b.id} (thread ${b.tid}) failed with ${code}${why}`,
      rule: 'SPEC §2; KERNEL-RULES C2, C3',
      ts: b.enterTs,
      rank: 2,
    });
  }
  return out;
}

/** Opens answered without passthrough on a connection that has it (the server never used it). */
function unusedPassthrough(tl: Timeline, from: number, claimsPassthrough: boolean): Finding[] {
  if (!claimsPassthrough || passthroughGranted(tl) === false) return [];
  const plain = tl.requests.filter((r) => sentAt(r) >= from && OPENS.has(r.opname) && r.openOut && r.end?.error === 0 && !isPt(r) && !r.refusedBy);
  if (!plain.length) return [];
  const reads = tl.requests.filter((r) => sentAt(r) >= from && (r.opname === 'FUSE_READ' || r.opname === 'FUSE_WRITE')).length;
  return [
    {
      text: `${describeOpenReply(plain[0]!)}, without FOPEN_PASSTHROUGH${plain.length > 1 ? ` (as did ${plain.length - 1} more open replies)` : ''}, so ${reads ? `the kernel sent ${reads} FUSE_READ/FUSE_WRITE to the server instead of the backing file` : 'reads and writes of that file go through the server'}`,
      rule: 'SPEC §3, §5; KERNEL-RULES D1, D2',
      ts: sentAt(plain[0]!),
      unique: plain[0]!.unique,
      rank: 3,
    },
  ];
}

export const NO_OPEN_RULE = 'KERNEL-RULES D12';

/** The first OPEN of the connection answered ENOSYS, from its timeline, or undefined. */
export function noOpenRequest(tl: Timeline): RequestRecord | undefined {
  return tl.requests.find((x) => x.opname === 'FUSE_OPEN' && x.end && Math.abs(x.end.error) === 38);
}

/** What an OPEN answered ENOSYS did (KERNEL-RULES D12), in the words of the finding and of the clauses that cite it. */
export function noOpenText(r: { unique: number; nodeid?: bigint | number }, claimsPassthrough = true): string {
  return `the server answered FUSE_OPEN (unique ${r.unique}${r.nodeid !== undefined ? `, nodeid ${r.nodeid}` : ''}) with ENOSYS, so the kernel set no_open for the connection: it sends no OPEN again and every later open gets no io mode${claimsPassthrough ? ', so no file opened after it can be in passthrough (its reads and writes go to the server with fh 0)' : ''}`;
}

/**
 * An OPEN answered ENOSYS, at any time of the connection: the kernel sets no_open, sends no OPEN
 * again and gives every later open no io mode, so nothing opened after it is in passthrough.
 */
function noOpenFindings(tl: Timeline, claimsPassthrough: boolean): Finding[] {
  const r = noOpenRequest(tl);
  if (!r) return [];
  return [{ text: noOpenText(r, claimsPassthrough), rule: NO_OPEN_RULE, ts: sentAt(r), unique: r.unique, rank: 1 }];
}

/** Backing ids still registered although every open that named them was released. */
function leakFindings(tl: Timeline, from: number): Finding[] {
  const leaked: number[] = [];
  for (const id of tl.liveIds()) {
    const l = tl.ids.get(id)!;
    if (l.opened!.enterTs < from) continue;
    const naming = tl.requests.filter((r) => OPENS.has(r.opname) && r.openOut?.backingId === id && isPt(r));
    if (!naming.length) continue; // an id no open reply named: nothing says its file was released
    const released = naming.every(
      (o) => o.refusedBy || tl.requests.some((x) => x.opname === 'FUSE_RELEASE' && x.fh === o.openOut!.fh && sentAt(x) > sentAt(o)),
    );
    if (released) leaked.push(id);
  }
  if (!leaked.length) return [];
  return [
    {
      text: `the server never closed backing id${leaked.length > 1 ? 's' : ''} ${leaked.slice(0, 8).join(', ')}${leaked.length > 8 ? ` and ${leaked.length - 8} more` : ''} after the last RELEASE of the files that used ${leaked.length > 1 ? 'them' : 'it'}, so the kernel keeps the backing file pinned until the server closes it (at the inode's FORGET at the latest, or unmount)`,
      rule: 'SPEC §2, BKG-003; KERNEL-RULES C6',
      ts: tl.ids.get(leaked[0]!)!.opened!.enterTs,
      rank: 3,
    },
  ];
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** SETATTR replies that did not do what was asked: a size or mode the reply's attributes contradict. */
function setattrFindings(tl: Timeline, from: number): Finding[] {
  const out: Finding[] = [];
  for (const r of tl.requests) {
    if (sentAt(r) < from || r.opname !== 'FUSE_SETATTR' || !r.attr || r.end?.error !== 0) continue;
    const a = decodeSetattrIn(r.send?.arg);
    if (!a) continue;
    const f = (text: string): Finding => ({ text, rule: 'SPEC §5; KERNEL-RULES H6, G4', ts: sentAt(r), unique: r.unique, rank: 1 });
    if (a.valid & FATTR.SIZE && r.attr.size !== a.size)
      out.push(
        f(
          `the server's SETATTR reply (unique ${r.unique}, nodeid ${r.send!.nodeid}) to a truncate to ${a.size} bytes gave size ${r.attr.size}: it did not change the size`,
        ),
      );
    else if (a.valid & FATTR.MODE && a.mode >= 0 && (r.attr.mode & 0o7777) !== (a.mode & 0o7777))
      out.push(
        f(
          `the server's SETATTR reply (unique ${r.unique}, nodeid ${r.send!.nodeid}) to a chmod ${(a.mode & 0o7777).toString(8)} gave mode ${(r.attr.mode & 0o7777).toString(8)}`,
        ),
      );
  }
  return out.slice(0, 2);
}

/** READ replies shorter than asked before the end of the file the server itself reported. */
function shortReadFindings(tl: Timeline, from: number): Finding[] {
  const size = new Map<bigint, number>();
  for (const r of tl.requests) {
    if (r.attr && r.nodeid !== undefined && r.end?.error === 0) size.set(r.nodeid, r.attr.size);
    // a WRITE the server took extends what it must be able to read back (fuse_write_in: offset @8, size @16)
    if (r.opname === 'FUSE_WRITE' && r.nodeid !== undefined && r.end?.error === 0) {
      const w = decodeReadIn(r.send?.arg);
      if (w) size.set(r.nodeid, Math.max(size.get(r.nodeid) ?? 0, w.offset + w.size));
    }
    if (sentAt(r) < from || r.opname !== 'FUSE_READ' || !r.end || r.end.error !== 0) continue;
    const q = decodeReadIn(r.send?.arg);
    const s = r.nodeid !== undefined ? size.get(r.nodeid) : undefined;
    // the data bytes of the READ reply: its out argument's size as the kernel kept it
    const got = r.reply ? r.reply.len - 16 : r.end.sizes[0];
    if (!q || s === undefined || got >= q.size || q.offset + got >= s) continue;
    return [
      {
        text: `the server's READ reply (unique ${r.unique}) gave ${got} bytes for ${q.size} at offset ${q.offset} of a file it reported as ${s} bytes: a short read before the end of the file`,
        rule: 'SPEC §6 RW; FUSE protocol (READ)',
        ts: sentAt(r),
        unique: r.unique,
        rank: 1,
      },
    ];
  }
  return [];
}

/** The attributes the server last answered with, per regular file (for stale-attribute failures). */
function attrFindings(tl: Timeline, from: number, atime = false): Finding[] {
  const last = new Map<bigint, RequestRecord>();
  for (const r of tl.requests)
    if (
      sentAt(r) >= from &&
      r.attr &&
      r.nodeid !== undefined &&
      r.end?.error === 0 &&
      (r.opname === 'FUSE_GETATTR' || r.opname === 'FUSE_LOOKUP') &&
      (r.attr.mode & S_IFMT) === S_IFREG
    )
      last.set(r.nodeid, r);
  return [...last.values()].slice(-2).map((r) => ({
    text: `the server's ${r.opname.replace('FUSE_', '')} reply (unique ${r.unique}, nodeid ${r.nodeid}) gave size ${r.attr!.size}, blocks ${r.attr!.blocks}, mtime ${r.attr!.mtime}.${String(r.attr!.mtimensec).padStart(9, '0')}${atime ? `, atime ${r.attr!.atime}.${String(r.attr!.atimensec).padStart(9, '0')}` : ''}, mode ${r.attr!.mode.toString(8)} (valid ${r.attrValidMs} ms)`,
    rule: atime ? 'SPEC §5; KERNEL-RULES G2, G4' : 'SPEC §5; KERNEL-RULES G1, G4',
    ts: sentAt(r),
    unique: r.unique,
    rank: 5,
  }));
}

/** Reads and writes the server served itself, and what it answered (for wrong-bytes failures). */
function serverIoFindings(tl: Timeline, from: number): Finding[] {
  const io = tl.requests.filter((r) => sentAt(r) >= from && (r.opname === 'FUSE_READ' || r.opname === 'FUSE_WRITE') && r.end);
  if (!io.length) return [];
  const reads = io.filter((r) => r.opname === 'FUSE_READ');
  const bad = io.filter((r) => r.end!.error !== 0);
  return [
    {
      text: `the data went through the server: ${reads.length} FUSE_READ and ${io.length - reads.length} FUSE_WRITE were answered by it${bad.length ? ` (${bad.length} with an error, first ${errnoName(bad[0]!.end!.error)} for unique ${bad[0]!.unique})` : ''}, so the bytes are the server's READ replies, not the backing file's`,
      rule: 'SPEC §5',
      ts: sentAt(io[0]!),
      unique: io[0]!.unique,
      rank: 2,
    },
  ];
}

export interface DiagnoseOptions {
  /** µs of the monotonic clock: the clause's start; findings are about what happened since */
  sinceTs: number;
  claimsPassthrough: boolean;
  /** the failure's words, to pick findings that fit it (wrong bytes, attributes, errno) */
  message?: string;
  /** µs of the monotonic clock when the timeline was read (default: its last event) */
  nowTs?: number;
}

/** Every finding of the timeline since the clause began, most telling first. */
export function diagnose(tl: Timeline, o: DiagnoseOptions): Finding[] {
  const from = o.sinceTs;
  const now = o.nowTs ?? Math.max(0, ...tl.requests.map((r) => r.end?.ts ?? sentAt(r)));
  const out: Finding[] = [...initFindings(tl, o.claimsPassthrough, o.message ?? ''), ...noOpenFindings(tl, o.claimsPassthrough), ...strayFindings(tl, from)];
  for (const r of tl.requests) {
    if (sentAt(r) < from) continue;
    const rf = replyFindings(r, now);
    if (rf) out.push(rf);
    if (OPENS.has(r.opname) && r.end?.error === 0 && r.refusedBy) {
      const w = whyRefused(tl, r);
      out.push(
        w ?? {
          text: `the kernel refused ${describeOpenReply(r)} (it released the handle at once, RELEASE unique ${r.refusedBy.unique}) for a reason the timeline does not show (the backing file's reopen may have failed: read-only or O_DIRECT-less backing filesystem)`,
          rule: 'SPEC §4; KERNEL-RULES D9, D11',
          ts: sentAt(r),
          unique: r.unique,
          rank: 2,
        },
      );
    }
  }
  out.push(
    ...fallbackFindings(tl, from),
    ...closeFindings(tl, from),
    ...leakFindings(tl, from),
    ...unusedPassthrough(tl, from, o.claimsPassthrough),
    ...abortFindings(tl, from),
  );
  const msg = o.message ?? '';
  out.push(...setattrFindings(tl, from), ...shortReadFindings(tl, from));
  if (/size|[amc]time|blocks|stale|mode|attribute|st_|EACCES/i.test(msg)) out.push(...attrFindings(tl, from, /atime/.test(msg)));
  if (/bytes differ|returned \d+|expected \d+|got \d+ bytes|short|SIGBUS/i.test(msg)) out.push(...serverIoFindings(tl, from));
  // one finding per request, the first kind found
  const seen = new Set<number>();
  const uniq = out.filter((f) => {
    if (f.unique === undefined) return true;
    if (seen.has(f.unique)) return false;
    seen.add(f.unique);
    return true;
  });
  return uniq.sort((a, b) => a.rank - b.rank || a.ts - b.ts);
}

/** 'cause: ... (rule)' for the first findings, or '' when the timeline shows nothing wrong. */
export function causeText(findings: readonly Finding[], max = 2): string {
  return findings
    .slice(0, max)
    .map((f) => `${f.text} (${f.rule})`)
    .join('; and ');
}
