// Platform facts: what the kernel this run is on actually does, checked with the reference
// server (ptfs) in its probe modes. The PLT clauses assert these facts; the clauses that rely on
// one (NEG, BKG, IOM) list its id in their `requires` (harness/clause.ts), so a platform that does not honour a fact
// gives "platform: PLT-00X failed: ..." instead of blaming the server under test.
// Each fact is computed once per worker and cached in the run's state directory for the others.
import { received } from '../runenv/index.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, readdir, open as fsOpen, stat } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkspace, ServerInstance, connectionWaiting, type Workspace, type TreeSpec, type SourceKind } from '../mount/index.ts';
import { EvidenceSession, countOf, type EvidenceWindow, type ReplyTracer, type RequestRecord, type TraceEvent } from '../evidence/index.ts';
import { startTracer } from './tracer.ts';
import {
  O,
  PROT,
  MAP,
  F,
  openAsync,
  closeAsync,
  preadAsync,
  pwriteAsync,
  mmapAsync,
  umount2Async,
  mountAsync,
  ioctlAsync,
  fcntlAsync,
  alignedBuffer,
  MOUNT,
  FUSE_DEV_IOC,
} from '../sys/index.ts';
import { runContext } from './context.ts';
import { errnoOf } from './expect.ts';
import { quiesce } from './windows.ts';
import { borrowDeviceFd, backingOpen, backingClose, probeNegotiation, probeStackDepth, probeBackingOpen, type NegotiationProbe } from './probe.ts';

export type FactId = 'PLT-001' | 'PLT-002' | 'PLT-003' | 'PLT-004' | 'PLT-005' | 'PLT-006' | 'PLT-007' | 'PLT-008' | 'PLT-009' | 'PLT-010' | 'PLT-011';

const FOPEN_DIRECT_IO = 1 << 0;
const FOPEN_NOFLUSH = 1 << 5;
const FOPEN_PASSTHROUGH = 1 << 7;

export interface FactResult {
  /** true: honoured; false: the platform does not honour it; null: could not be checked here */
  ok: boolean | null;
  /** what was observed, in one line (the failure reason when ok is false) */
  detail: string;
  evidence: Record<string, unknown>;
  /** checked for an earlier server of the same `fusecert run` (src/cli/run.ts carryFacts) */
  from?: string;
}

/** A reference server mounted for one check, torn down after it. */
export interface RefMount {
  ws: Workspace;
  server: ServerInstance;
  evidence: EvidenceSession | null;
  connection: number;
  pids: number[];
  path(rel?: string): string;
  backing(rel?: string): string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RefOptions {
  args?: string[];
  kind?: SourceKind;
  tree?: TreeSpec | null;
  evidence?: boolean;
  /**
   * with `evidence`, also the reply tracer (what the server answered: open flags, backing ids,
   * file handles), started before the mount so it sees INIT. Where it cannot load (no BPF, a UML
   * guest) the session reads tracefs alone and windows have no timeline.
   */
  replies?: boolean;
  /** abort the connection when fn has not finished by then; default the run's per-clause deadline
   * (3x inside a guest, where a loaded UML kernel is slower), never below 20 s: a run with a short
   * --deadline for a hanging server still gives the reference server its time */
  timeoutMs?: number;
}

const DEFAULT_TREE: TreeSpec = {
  dirs: ['d'],
  files: [
    { path: 'f', size: 65536, seed: 5 },
    { path: 'd/g', size: 4097, seed: 6 },
  ],
  symlinks: [],
};

/**
 * Mount the reference server (or `spec`) in a probe mode on fresh directories, run fn, and always
 * tear everything down. A hung fn gets the connection aborted (fusectl) so it returns.
 */
export async function withReference<T>(opts: RefOptions, fn: (r: RefMount) => Promise<T>): Promise<T> {
  const ctx = runContext();
  if (!ctx.reference) throw new Error('the reference server (servers/ptfs) is not built: fusecert build-ptfs, or npm run build in a checkout');
  // the tracer loads while the workspace is made; until the session owns it, it is ours to close
  const tracing = opts.evidence && opts.replies ? startTracer() : null;
  let tracer: ReplyTracer | null = null;
  let ws: Workspace;
  try {
    ws = await makeWorkspace({ tree: opts.tree === undefined ? DEFAULT_TREE : opts.tree, kind: opts.kind, sizeMb: 64 });
  } catch (e) {
    (await tracing)?.tracer?.close();
    throw e;
  }
  let server: ServerInstance | null = null;
  let evidence: EvidenceSession | null = null;
  try {
    tracer = tracing ? (await tracing).tracer : null;
    server = await ServerInstance.start(ctx.reference, ws.source, ws.mountpoint, opts.args ?? [], ws.scratch);
    if (opts.evidence) {
      if (tracer) {
        try {
          await tracer.setConnection(server.connection, server.pids);
        } catch {
          tracer.close();
          tracer = null;
        }
      }
      const t = tracer;
      tracer = null; // the session owns it once open returns
      try {
        evidence = await EvidenceSession.open({ connection: server.connection, pids: server.pids, label: 'platform', ...(t ? { replies: t } : {}) });
      } catch {
        t?.close(); // open may fail before it took the tracer (tracefs unavailable); a second close is harmless
        evidence = null;
      }
    }
    const srv = server;
    const r: RefMount = {
      ws,
      server: srv,
      evidence,
      connection: srv.connection,
      pids: srv.pids,
      path: (rel = '') => path.join(ws.mountpoint, rel),
      backing: (rel = '') => path.join(ws.source, rel),
    };
    const timeoutMs = opts.timeoutMs ?? Math.max(20_000, ctx.deadlineMs);
    let timer: NodeJS.Timeout | undefined;
    const work = fn(r);
    const outcome = await Promise.race([
      work.then(
        (v) => ({ v }),
        (e: unknown) => ({ e }),
      ),
      new Promise<{ hung: true }>((res) => {
        timer = setTimeout(() => res({ hung: true }), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if ('hung' in outcome) {
      srv.abort();
      await Promise.race([work.catch(() => {}), sleep(5000)]);
      throw new Error(`the reference server (${(opts.args ?? []).join(' ') || 'default mode'}) did not answer within ${timeoutMs} ms: connection aborted`);
    }
    if ('e' in outcome) throw outcome.e;
    return outcome.v;
  } finally {
    tracer?.close();
    if (evidence) await evidence.close().catch(() => {});
    if (server) await server.stop().catch(() => {});
    await ws.dispose();
  }
}

async function openErrno(p: string, flags: number): Promise<{ fd: number } | { code: string }> {
  try {
    return { fd: await openAsync(p, flags | O.O_CLOEXEC) };
  } catch (e) {
    return { code: errnoOf(e) };
  }
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = runContext().platform.kernelVersion;
  return a > major || (a === major && b >= minor);
}

// ---------------------------------------------------------------------------------------
// The facts

/** max_stack_depth values outside 1..FILESYSTEM_MAX_STACK_DEPTH (2): the kernel leaves passthrough off. */
const BAD_STACK_DEPTHS = [0, 3];

interface DepthCase {
  depth: number;
  /** ptfs's INIT reply: FUSE_PASSTHROUGH set, and the max_stack_depth it sent */
  replied: { passthrough: unknown; maxStackDepth: unknown };
  probe: NegotiationProbe;
}

async function depthCase(depth: number): Promise<DepthCase> {
  const tree: TreeSpec = { dirs: [], files: [{ path: 'f', size: 16, seed: 1 }], symlinks: [] };
  return withReference({ args: ['--max-stack-depth', String(depth), '--init-report', '{scratch}/init.json'], tree }, async (r) => {
    const rep = JSON.parse(await readFile(path.join(r.ws.scratch, 'init.json'), 'utf8')) as Record<string, unknown>;
    const probe = await probeNegotiation(r.pids, r.connection, r.backing('f'));
    return { depth, replied: { passthrough: rep.passthrough_requested, maxStackDepth: rep.max_stack_depth }, probe };
  });
}

async function plt001(): Promise<FactResult> {
  const main = withReference({ args: ['--init-report', '{scratch}/init.json'] }, async (r) => {
    const rep = JSON.parse(await readFile(path.join(r.ws.scratch, 'init.json'), 'utf8')) as Record<string, unknown>;
    const probe = await probeNegotiation(r.pids, r.connection, r.backing('f'));
    return { rep, probe };
  });
  // the depth cases mount at the same time as the main one: each is a mount of its own
  const settled = await Promise.allSettled([main, ...BAD_STACK_DEPTHS.map(depthCase)]);
  if (settled[0].status === 'rejected') throw settled[0].reason;
  const { rep, probe } = settled[0].value;
  // without FUSE_PASSTHROUGH offered, ptfs refuses INIT and the depth cases cannot mount
  if (rep.passthrough_offered !== true)
    return {
      ok: false,
      detail: `the kernel's INIT (FUSE ${rep.major}.${rep.minor}) does not offer FUSE_PASSTHROUGH (flags ${rep.flags}, flags2 ${rep.flags2})`,
      evidence: { init: rep, probe },
    };
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  const depths = settled.slice(1).map((s) => (s as PromiseFulfilledResult<DepthCase>).value);
  const evidence = { init: rep, probe, badStackDepths: depths };
  if (!probe.granted)
    return {
      ok: false,
      detail: `ptfs replied FUSE_PASSTHROUGH with max_stack_depth ${rep.max_stack_depth} but the borrowed-fd probe says not granted (${probe.code})`,
      evidence,
    };
  const problems: string[] = [];
  for (const d of depths) {
    if (d.replied.passthrough !== true || d.replied.maxStackDepth !== d.depth)
      problems.push(
        `ptfs --max-stack-depth ${d.depth} did not reply FUSE_PASSTHROUGH with that depth (passthrough ${d.replied.passthrough}, depth ${d.replied.maxStackDepth})`,
      );
    else if (d.probe.granted || d.probe.code !== 'EPERM')
      problems.push(
        `an INIT reply with FUSE_PASSTHROUGH and max_stack_depth ${d.depth} (outside 1..2): the borrowed-fd probe gave ${d.probe.code}, expected EPERM (not granted)`,
      );
  }
  if (problems.length) return { ok: false, detail: problems.join('; '), evidence };
  return {
    ok: true,
    detail: `INIT FUSE ${rep.major}.${rep.minor} offers FUSE_PASSTHROUGH (flags2 ${rep.flags2}); granted to ptfs at max_stack_depth ${rep.max_stack_depth}, not at ${BAD_STACK_DEPTHS.join(' or ')} (EPERM)`,
    evidence,
  };
}

type Want = string | RegExp | string[];

/**
 * PLT-002's errno matrix, one line per case as pjdfstest writes its `expect` lines: the key of
 * ptfs's --ioctl-selfcheck output, what the call was, and what the kernel must answer (SPEC §2,
 * docs/kernel-rules.md B and C), or null where this kernel's answer is recorded, not judged.
 * `sc` is the self-check's output: the cyclic-id case expects the number after the one before.
 */
function selfcheckTable(sc: Record<string, unknown>): [key: string, call: string, want: Want | null][] {
  const directory = kernelAtLeast(6, 17) ? 'EISDIR' : kernelAtLeast(6, 12) ? ['EISDIR', 'EOPNOTSUPP'] : 'EOPNOTSUPP';
  // The non-regular and O_PATH answers below are those of the d_is_reg check on an fget_raw file
  // (6.17+, and 6.12.118, which gives EISDIR for the directory). The older check (EOPNOTSUPP for
  // a directory, 6.9-6.11 and perhaps early 6.12.y) is not read here: those answers are recorded.
  const regCheck = kernelAtLeast(6, 17) || sc.directory === 'EISDIR';
  const nonRegular = regCheck ? 'EINVAL' : null;
  const id = /^id:\d+$/;
  const regular = /^id:(\d+)$/.exec(String(sc.regular));
  return [
    ['flags_nonzero', 'BACKING_OPEN flags=1', 'EINVAL'],
    ['padding_nonzero', 'BACKING_OPEN padding=1', 'EINVAL'],
    ['bad_fd', 'BACKING_OPEN of a closed fd', 'EBADF'],
    ['directory', 'BACKING_OPEN of a directory', directory],
    ['pipe', 'BACKING_OPEN of a pipe', nonRegular],
    ['socket', 'BACKING_OPEN of a socket', nonRegular],
    ['chardev', 'BACKING_OPEN of /dev/null', nonRegular],
    ['symlink_o_path', 'BACKING_OPEN of a symlink opened O_PATH|O_NOFOLLOW', nonRegular],
    ['o_path', 'BACKING_OPEN of a regular file opened O_PATH', regCheck ? id : null],
    ['close_o_path', "BACKING_CLOSE of the O_PATH file's id", regCheck ? 'ok' : null],
    ['regular', 'BACKING_OPEN of a regular file', id],
    ['close_id0', 'BACKING_CLOSE of id 0', 'EINVAL'],
    ['close_negative', 'BACKING_CLOSE of id 0xffffffff (-1 as an int)', 'EINVAL'],
    ['close_unknown', 'BACKING_CLOSE of an unknown id', 'ENOENT'],
    ['close_regular', 'BACKING_CLOSE of a live id', 'ok'],
    ['double_close', 'second BACKING_CLOSE of an id', 'ENOENT'],
    ['regular_again', 'BACKING_OPEN after that id was closed (ids are cyclic: the next number)', regular ? `id:${Number(regular[1]) + 1}` : id],
    ['clone', 'FUSE_DEV_IOC_CLONE of a new /dev/fuse fd', 'ok'],
    ['clone_open', 'BACKING_OPEN on the clone', id],
    ['clone_id_closed_on_original', "BACKING_CLOSE on the original fd of the clone's id", 'ok'],
    ['clone_id_closed_again_on_clone', 'then BACKING_CLOSE of that id on the clone', 'ENOENT'],
    ['original_open', 'BACKING_OPEN on the original fd', id],
    ['original_id_closed_on_clone', "BACKING_CLOSE on the clone of the original's id", 'ok'],
    ['no_cap_open', 'BACKING_OPEN without CAP_SYS_ADMIN (effective set)', 'EPERM'],
    ['no_cap_close', 'BACKING_CLOSE of a live id without CAP_SYS_ADMIN', 'EPERM'],
    ['close_after_no_cap', 'BACKING_CLOSE of that id with CAP_SYS_ADMIN', 'ok'],
  ];
}

async function plt002(): Promise<FactResult> {
  const problems: string[] = [];
  const evidence: Record<string, unknown> = {};
  const expectEq = (what: string, got: string, want: Want) => {
    const ok = typeof want === 'string' ? got === want : Array.isArray(want) ? want.includes(got) : want.test(got);
    if (!ok) problems.push(`${what}: got ${got}, expected ${String(want)}`);
  };
  // 1. the error cases, run by ptfs on its own connection right after INIT
  await withReference({ args: ['--ioctl-selfcheck', '{scratch}/selfcheck.json'] }, async (r) => {
    let sc: Record<string, string | boolean> = {};
    for (let i = 0; i < 100 && !existsSync(path.join(r.ws.scratch, 'selfcheck.json')); i++) await sleep(20);
    sc = JSON.parse(await readFile(path.join(r.ws.scratch, 'selfcheck.json'), 'utf8'));
    evidence.selfcheck = sc;
    const notJudged: string[] = [];
    for (const [key, what, want] of selfcheckTable(sc)) {
      if (want === null) notJudged.push(`${key} ${String(sc[key])}`);
      else expectEq(what, String(sc[key]), want);
    }
    if (notJudged.length)
      evidence.notJudged = `answers of the pre-6.17 non-regular check (directory ${String(sc.directory)}), recorded only: ${notJudged.join(', ')}`;
    // 2. the borrowed-fd probe on a connection with passthrough granted: negotiation is checked
    // before flags and padding, and nothing is allocated
    const devFd = await borrowDeviceFd(r.pids, r.connection);
    try {
      const f = await openAsync(r.backing('f'), O.O_RDONLY | O.O_CLOEXEC);
      try {
        const a = await backingOpen(devFd, f, 1);
        const b = await backingOpen(devFd, f, 0, 1n);
        // B3: an argument pointer into the unmapped first page (address 8) gives EFAULT
        const badArg = async (req: number) =>
          ioctlAsync(devFd, req, 8n).then(
            (v) => `returned ${v}`,
            (e: unknown) => errnoOf(e),
          );
        const faultOpen = await badArg(FUSE_DEV_IOC.BACKING_OPEN);
        const faultClose = await badArg(FUSE_DEV_IOC.BACKING_CLOSE);
        evidence.borrowedGranted = { flags1: a, padding1: b, badPointerOpen: faultOpen, badPointerClose: faultClose };
        expectEq('borrowed-fd BACKING_OPEN flags=1 (granted)', String(a), 'EINVAL');
        expectEq('borrowed-fd BACKING_OPEN padding=1 (granted)', String(b), 'EINVAL');
        expectEq('borrowed-fd BACKING_OPEN with a bad argument pointer', faultOpen, 'EFAULT');
        expectEq('borrowed-fd BACKING_CLOSE with a bad argument pointer', faultClose, 'EFAULT');
        if (typeof a === 'number') await backingClose(devFd, a);
        if (typeof b === 'number') await backingClose(devFd, b);
        // 3. the backing ioctls do not look at whether the connection is alive: after an abort
        // (fusectl), while this borrowed fd keeps the device open, BACKING_OPEN still gives an id
        const aborted = r.server.abort();
        const lookup = await stat(r.path('no-such-name-after-abort')).then(
          () => 'OK',
          (e: unknown) => errnoOf(e),
        );
        const after = await backingOpen(devFd, f);
        const closed = typeof after === 'number' ? await backingClose(devFd, after) : 'not tried';
        // an aborted mount stays until unmounted (ptfs exits on the abort without unmounting):
        // unmount it now rather than let the teardown wait for it to go
        const unmounted = aborted
          ? await umount2Async(r.path()).then(
              () => 'OK',
              (e: unknown) => errnoOf(e),
            )
          : 'not aborted';
        evidence.afterAbort = { aborted, lookup, open: after, close: closed, unmounted };
        if (!aborted || lookup !== 'ENOTCONN')
          problems.push(`the connection could not be aborted through fusectl (abort written: ${aborted}, a lookup then gave ${lookup}, expected ENOTCONN)`);
        else {
          expectEq('borrowed-fd BACKING_OPEN after an abort', typeof after === 'number' ? 'id' : after, 'id');
          expectEq('borrowed-fd BACKING_CLOSE of that id after the abort', closed, 'OK');
        }
      } finally {
        await closeAsync(f);
      }
    } finally {
      await closeAsync(devFd);
    }
  });
  // 4. passthrough not negotiated: every call gives EPERM
  await withReference({ args: ['--no-passthrough'] }, async (r) => {
    const devFd = await borrowDeviceFd(r.pids, r.connection);
    try {
      const f = await openAsync(r.backing('f'), O.O_RDONLY | O.O_CLOEXEC);
      try {
        const a = await backingOpen(devFd, f, 1);
        const b = await backingOpen(devFd, f, 0);
        const c = await backingClose(devFd, 1);
        evidence.borrowedNotGranted = { flags1: a, regular: b, close1: c };
        expectEq('borrowed-fd BACKING_OPEN flags=1 (not negotiated)', String(a), 'EPERM');
        expectEq('borrowed-fd BACKING_OPEN of a regular file (not negotiated)', String(b), 'EPERM');
        expectEq('borrowed-fd BACKING_CLOSE 1 (not negotiated)', c, 'EPERM');
        if (typeof b === 'number') await backingClose(devFd, b);
      } finally {
        await closeAsync(f);
      }
    } finally {
      await closeAsync(devFd);
    }
  });
  // 5. a /dev/fuse fd that is not mounted yet
  const dev = await openAsync('/dev/fuse', O.O_RDWR | O.O_CLOEXEC);
  try {
    const f = await openAsync('/proc/self/exe', O.O_RDONLY | O.O_CLOEXEC);
    try {
      const a = await backingOpen(dev, f, 0);
      evidence.unmountedDevice = a;
      expectEq('BACKING_OPEN on an unmounted /dev/fuse fd', String(a), 'EPERM');
    } finally {
      await closeAsync(f);
    }
  } finally {
    await closeAsync(dev);
  }
  return problems.length
    ? { ok: false, detail: problems.join('; '), evidence }
    : {
        ok: true,
        detail:
          'BACKING_OPEN/CLOSE errnos as SPEC §2; ids cyclic and shared by a cloned fd; EPERM without CAP_SYS_ADMIN; ioctls still work after an abort; probe: flags=1 -> EINVAL granted / EPERM not negotiated',
        evidence,
      };
}

async function plt003(): Promise<FactResult> {
  return withReference({ args: ['--writeback-cache', '--init-report', '{scratch}/init.json'] }, async (r) => {
    const rep = JSON.parse(await readFile(path.join(r.ws.scratch, 'init.json'), 'utf8')) as Record<string, unknown>;
    const probe = await probeNegotiation(r.pids, r.connection, r.backing('f'));
    const evidence = { init: rep, probe };
    if (rep.writeback_cache !== true || rep.passthrough_requested !== true) {
      return { ok: null, detail: `ptfs could not request both (reply flags ${rep.reply_flags}, flags2 ${rep.reply_flags2})`, evidence };
    }
    if (probe.granted)
      return { ok: false, detail: 'the kernel granted FUSE_PASSTHROUGH together with FUSE_WRITEBACK_CACHE (kernels before 6.10.y/6.11 do)', evidence };
    if (probe.code !== 'EPERM') return { ok: false, detail: `borrowed-fd probe gave ${probe.code}, expected EPERM`, evidence };
    return { ok: true, detail: 'INIT reply with PASSTHROUGH|WRITEBACK_CACHE: passthrough not granted (EPERM)', evidence };
  });
}

interface Conflict {
  name: string;
  rule: string;
  args: string[];
  first: number;
  second: number;
}

export const IO_MODE_CONFLICTS: Conflict[] = [
  {
    name: 'direct-io-while-passthrough',
    rule: '§4.1 inode has a backing object, new open has FOPEN_DIRECT_IO without FOPEN_PASSTHROUGH',
    args: ['--io-policy', 'passthrough-direct', '--defect', 'mixed-modes'],
    first: O.O_WRONLY,
    second: O.O_RDONLY,
  },
  {
    name: 'passthrough-while-cached',
    rule: '§4.2 passthrough open while cached opens exist',
    args: ['--io-policy', 'by-access'],
    first: O.O_RDONLY,
    second: O.O_WRONLY,
  },
  {
    name: 'second-backing-object',
    rule: '§4.3 passthrough open naming a second backing id of the same file',
    args: ['--defect', 'backing-id-per-open'],
    first: O.O_RDONLY,
    second: O.O_RDONLY,
  },
  {
    name: 'cached-while-passthrough',
    rule: '§4.4 cached open while the inode is in passthrough mode',
    args: ['--io-policy', 'by-access'],
    first: O.O_WRONLY,
    second: O.O_RDONLY,
  },
];

/** One §4 conflict: the second open gives EIO, the first fd keeps working, and after its close any mode is allowed. */
export async function ioModeConflict(c: Conflict): Promise<FactResult> {
  return withReference({ args: c.args, evidence: true, replies: true }, async (r) => {
    const problems: string[] = [];
    const ev: Record<string, unknown> = { rule: c.rule, args: c.args };
    const p = r.path('f');
    const fd1 = await openAsync(p, c.first | O.O_CLOEXEC);
    let fd1Open = true;
    try {
      let second: Awaited<ReturnType<typeof openErrno>>;
      if (r.evidence) {
        const win = await r.evidence.window(`refused open ${c.name}`, () => openErrno(p, c.second));
        second = win.result;
        if ('code' in second) {
          const rel = releaseOfRefusedOpen(win, r.connection);
          ev.releaseAfterRefusedOpen = rel.detail;
          if (!rel.ok) problems.push(`${c.rule}: ${rel.detail}`);
        }
      } else {
        second = await openErrno(p, c.second);
        ev.releaseAfterRefusedOpen = 'not checked: tracefs evidence unavailable';
      }
      ev.secondOpen = 'code' in second ? second.code : 'OK';
      if ('fd' in second) {
        await closeAsync(second.fd);
        problems.push(`${c.rule}: the second open succeeded, expected EIO`);
      } else if (second.code !== 'EIO') problems.push(`${c.rule}: the second open failed with ${second.code}, expected EIO`);
      // the existing fd keeps working
      const data = Buffer.from(`still working ${c.name}\n`);
      try {
        if (c.first === O.O_RDONLY) {
          const buf = Buffer.alloc(4096);
          const n = await preadAsync(fd1, buf, 0);
          const want = await readFile(r.backing('f'));
          if (n !== 4096 || !buf.equals(want.subarray(0, 4096))) problems.push(`read on the first fd after the refused open returned wrong data (${n} bytes)`);
        } else {
          const n = await pwriteAsync(fd1, data, 100);
          const back = (await readFile(r.backing('f'))).subarray(100, 100 + data.length);
          if (n !== data.length || !back.equals(data)) problems.push(`write on the first fd after the refused open did not reach the backing file`);
        }
        ev.firstFdAfter = 'OK';
      } catch (e) {
        ev.firstFdAfter = errnoOf(e);
        problems.push(`I/O on the first fd after the refused open failed with ${errnoOf(e)}`);
      }
      await closeAsync(fd1);
      fd1Open = false;
      await quiesce(r.connection);
      const again = await openErrno(p, c.second);
      ev.afterRelease = 'code' in again ? again.code : 'OK';
      if ('fd' in again) await closeAsync(again.fd);
      else problems.push(`after the last conflicting file was released, the open still failed with ${again.code}`);
    } finally {
      if (fd1Open) await closeAsync(fd1).catch(() => {});
    }
    return problems.length
      ? { ok: false, detail: problems.join('; '), evidence: ev }
      : { ok: true, detail: `${c.rule}: EIO; the first fd kept working; after its release the open succeeded`, evidence: ev };
  });
}

/** An fuse_open_out as the kernel kept it (else as the server sent it): open_flags and backing_id. */
function openOutOf(rec: RequestRecord | undefined): { flags: number; backingId: number; fh: bigint } | null {
  const b = rec?.end?.out[0]?.length ? rec.end.out[0] : rec?.reply?.payload;
  if (!b || b.length < 16) return null;
  return { fh: b.readBigUInt64LE(0), flags: b.readUInt32LE(8), backingId: b.readInt32LE(12) };
}

/**
 * D11: the kernel releases the handle of an open it refused before open() returns: the opener's
 * thread sends FUSE_RELEASE after the FUSE_OPEN, with no FUSE_FLUSH between (a close(2) flushes
 * first). With the reply tracer, the RELEASE must also name the fh the OPEN's reply handed out.
 */
function releaseOfRefusedOpen(win: EvidenceWindow<unknown>, connection: number): { ok: boolean; detail: string } {
  const sends = win.events.filter((e) => e.kind === 'request_send' && e.connection === connection) as Extract<TraceEvent, { kind: 'request_send' }>[];
  // by position, not unique: before 6.13 fuse_request_send fires before the unique is given (0)
  const at = sends.map((e) => e.opname).lastIndexOf('FUSE_OPEN');
  const open = sends[at];
  if (!open) return { ok: false, detail: `no FUSE_OPEN was sent for the refused open (requests ${JSON.stringify(win.requests.counts)})` };
  const name = (e: { unique: number }) => (e.unique ? ` (unique ${e.unique})` : '');
  const after = sends.slice(at + 1).filter((e) => e.tid === open.tid);
  const rel = after.findIndex((e) => e.opname === 'FUSE_RELEASE');
  const release = after[rel];
  if (!release)
    return { ok: false, detail: `the kernel sent no FUSE_RELEASE from the opener's thread after the refused FUSE_OPEN${name(open)} before open() returned` };
  if (after.slice(0, rel).some((e) => e.opname === 'FUSE_FLUSH'))
    return { ok: false, detail: `a FUSE_FLUSH came before the FUSE_RELEASE of the refused open${name(open)}` };
  let detail = `FUSE_RELEASE${name(release)} from the opener's thread right after the refused FUSE_OPEN${name(open)}, no FUSE_FLUSH`;
  const tl = win.timeline();
  if (!tl || !open.unique) return { ok: true, detail: `${detail}; fh not compared (no reply tracer)` };
  const out = openOutOf(tl.byUnique.get(open.unique));
  const fh = tl.byUnique.get(release.unique)?.fh;
  if (!out || fh === undefined) return { ok: true, detail: `${detail}; fh not compared (the tracer did not record the OPEN reply or the RELEASE's fh)` };
  if (fh !== out.fh) return { ok: false, detail: `the FUSE_RELEASE after the refused open names fh ${fh}, the OPEN reply handed out fh ${out.fh}` };
  detail += `, for the fh the OPEN reply handed out (${fh}; reply open_flags 0x${out.flags.toString(16)}, backing id ${out.backingId})`;
  return { ok: true, detail };
}

/** E4: the name of PLT-004's check that the backing object goes at close, before the RELEASE is answered. */
export const RELEASE_ORDER = 'backing-dropped-before-release';

/**
 * E4: the inode's last passthrough file drops the backing object at close, before the RELEASE
 * reaches the server, so another mode is allowed at once. ptfs (by-access: writes passthrough,
 * reads cached) never answers a RELEASE here: a cached open right after the passthrough fd's
 * close must succeed while that RELEASE still waits (a refused one would hang: its RELEASE is
 * synchronous).
 */
async function backingDroppedBeforeRelease(): Promise<FactResult> {
  return withReference({ args: ['--io-policy', 'by-access', '--defect', 'hang-on', 'RELEASE'] }, async (r) => {
    const ev: Record<string, unknown> = {};
    const p = r.path('f');
    // (no refused cached open while fd1 is open: the kernel's RELEASE of a refused open is
    // synchronous, and ptfs answers no RELEASE here; cached-while-passthrough shows the refusal)
    const fd1 = await openAsync(p, O.O_WRONLY | O.O_CLOEXEC);
    await closeAsync(fd1);
    // the RELEASE of fd1 is queued or with ptfs, which holds it
    let waiting = connectionWaiting(r.connection) ?? 0;
    for (let i = 0; i < 50 && waiting === 0; i++) {
      await sleep(2);
      waiting = connectionWaiting(r.connection) ?? 0;
    }
    ev.requestsWaitingAfterClose = waiting;
    const after = await openErrno(p, O.O_RDONLY);
    ev.cachedOpenAfterClose = 'code' in after ? after.code : 'OK';
    ev.requestsWaitingThen = connectionWaiting(r.connection);
    if ('fd' in after) await closeAsync(after.fd);
    const problems: string[] = [];
    if (waiting === 0) return { ok: null, detail: 'the RELEASE of the passthrough fd was not seen waiting (fusectl): the order cannot be shown', evidence: ev };
    if (ev.cachedOpenAfterClose !== 'OK')
      problems.push(
        `a cached open right after the passthrough fd's close, its RELEASE still unanswered, gave ${ev.cachedOpenAfterClose}: the backing object was not dropped at close`,
      );
    return problems.length
      ? { ok: false, detail: problems.join('; '), evidence: ev }
      : {
          ok: true,
          detail: `the backing object goes at close: a cached open succeeded while the RELEASE still waited (${waiting} request(s) waiting)`,
          evidence: ev,
        };
  });
}

async function plt004(): Promise<FactResult> {
  // the conflicts side by side: each has a mount and an evidence session of its own, and most of
  // a check is waiting on a mount, a tracer or a tracefs instance
  const results: Record<string, FactResult> = Object.fromEntries(
    await Promise.all([
      ...IO_MODE_CONFLICTS.map(async (c) => [c.name, await ioModeConflict(c)] as const),
      (async () =>
        [
          RELEASE_ORDER,
          await backingDroppedBeforeRelease().catch(
            (e: unknown): FactResult => ({ ok: false, detail: `${COULD_NOT_RUN}: ${(e as Error).message}`, evidence: {} }),
          ),
        ] as const)(),
    ]),
  );
  const bad = Object.entries(results).filter(([, v]) => v.ok === false);
  const evidence = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { ok: v.ok, detail: v.detail, ...v.evidence }]));
  return bad.length
    ? { ok: false, detail: bad.map(([k, v]) => `${k}: ${v.detail}`).join('; '), evidence }
    : { ok: true, detail: 'every §4 conflict gives EIO and leaves existing fds working; the backing object goes at close, before RELEASE', evidence };
}

async function plt005(): Promise<FactResult> {
  return withReference({ args: ['--open-flags-extra', '2'] }, async (r) => {
    const o = await openErrno(r.path('f'), O.O_RDONLY);
    if ('fd' in o) {
      await closeAsync(o.fd);
      return { ok: false, detail: 'an open reply with FOPEN_PASSTHROUGH|FOPEN_KEEP_CACHE was accepted', evidence: { open: 'OK' } };
    }
    return o.code === 'EIO'
      ? { ok: true, detail: 'FOPEN_PASSTHROUGH|FOPEN_KEEP_CACHE: open() gives EIO', evidence: { open: o.code } }
      : { ok: false, detail: `FOPEN_PASSTHROUGH|FOPEN_KEEP_CACHE: open() gave ${o.code}, expected EIO`, evidence: { open: o.code } };
  });
}

// ---- PLT-008/PLT-009: open replies, shaped by file name under ptfs --probe-open-replies

interface ReplyCase {
  /** the file's name, which makes ptfs's reply */
  file: string;
  /** what the reply carries */
  reply: string;
  /** the rows of docs/kernel-rules.md */
  rule: string;
}

/** Replies the kernel must refuse: open() gives EIO. KEEP_CACHE is PLT-005's. */
export const REFUSED_OPEN_REPLIES: readonly ReplyCase[] = [
  { file: 'flags-4', reply: 'FOPEN_PASSTHROUGH|FOPEN_NONSEEKABLE', rule: 'D5' },
  { file: 'flags-8', reply: 'FOPEN_PASSTHROUGH|FOPEN_CACHE_DIR', rule: 'D5' },
  { file: 'flags-10', reply: 'FOPEN_PASSTHROUGH|FOPEN_STREAM', rule: 'D5' },
  { file: 'flags-80000000', reply: 'FOPEN_PASSTHROUGH and bit 31 (no FOPEN_* flag)', rule: 'D5' },
  { file: 'id-zero', reply: 'FOPEN_PASSTHROUGH naming backing id 0', rule: 'D7' },
  { file: 'id-negative', reply: 'FOPEN_PASSTHROUGH naming backing id -1', rule: 'D7' },
  { file: 'id-unknown', reply: 'FOPEN_PASSTHROUGH naming backing id INT_MAX (never allocated)', rule: 'D8' },
  { file: 'id-closed', reply: 'FOPEN_PASSTHROUGH naming an id closed before the reply', rule: 'D8, C5' },
];

/** Replies the kernel must accept: the flags allowed beside FOPEN_PASSTHROUGH (the other side of D5). */
export const ACCEPTED_OPEN_REPLIES: readonly ReplyCase[] = [
  { file: 'plain', reply: 'FOPEN_PASSTHROUGH', rule: 'D1' },
  { file: 'flags-20', reply: 'FOPEN_PASSTHROUGH|FOPEN_NOFLUSH', rule: 'D5' },
  { file: 'flags-40', reply: 'FOPEN_PASSTHROUGH|FOPEN_PARALLEL_DIRECT_WRITES', rule: 'D5' },
  { file: 'flags-1', reply: 'FOPEN_PASSTHROUGH|FOPEN_DIRECT_IO', rule: 'D5' },
  { file: 'flags-61', reply: 'FOPEN_PASSTHROUGH|FOPEN_DIRECT_IO|FOPEN_NOFLUSH|FOPEN_PARALLEL_DIRECT_WRITES', rule: 'D5' },
];

const treeOf = (names: readonly string[], dirs: string[] = []): TreeSpec => ({
  dirs,
  files: names.map((n, i) => ({ path: n, size: 16384, seed: 80 + i })),
  symlinks: [],
});

/** Open each case's file read-only: the errno, or 'OK' after its first 4 KiB read back as the backing file's. */
async function openCase(r: RefMount, file: string): Promise<string> {
  const o = await openErrno(r.path(file), O.O_RDONLY);
  if ('code' in o) return o.code;
  try {
    const buf = Buffer.alloc(4096);
    const n = await preadAsync(o.fd, buf, 0);
    const want = (await readFile(r.backing(file))).subarray(0, 4096);
    return n === 4096 && buf.equals(want) ? 'OK' : `opened, but read ${n} bytes that differ from the backing file`;
  } catch (e) {
    return `opened, but read failed with ${errnoOf(e)}`;
  } finally {
    await closeAsync(o.fd);
  }
}

async function plt008(): Promise<FactResult> {
  const problems: string[] = [];
  const evidence: Record<string, unknown> = {};
  const cases = [...REFUSED_OPEN_REPLIES, ...ACCEPTED_OPEN_REPLIES];
  // D5, D7, D8, C5: one mount, one file per reply
  await withReference({ args: ['--probe-open-replies'], tree: treeOf(cases.map((c) => c.file)) }, async (r) => {
    for (const c of cases) {
      const got = await openCase(r, c.file);
      const refused = REFUSED_OPEN_REPLIES.includes(c);
      evidence[c.file] = `${c.reply}: ${got}`;
      if (refused && got !== 'EIO') problems.push(`${c.rule}: an open reply with ${c.reply} gave ${got === 'OK' ? 'a working open' : got}, expected EIO`);
      if (!refused && got !== 'OK') problems.push(`${c.rule}: an open reply with ${c.reply} gave ${got}, expected a working open`);
    }
    // D11: a refused CREATE reply (the name makes it PASSTHROUGH|NONSEEKABLE) gives EIO, and the file stays
    const made = 'flags-4.created';
    const created = await openErrno(r.path(made), O.O_CREAT | O.O_EXCL | O.O_WRONLY);
    if ('fd' in created) await closeAsync(created.fd);
    const stays = await stat(r.path(made)).then(
      () => 'there',
      (e: unknown) => errnoOf(e),
    );
    evidence.refusedCreate = `CREATE replied FOPEN_PASSTHROUGH|FOPEN_NONSEEKABLE: ${'code' in created ? created.code : 'OK'}; the file afterwards: ${stays}`;
    if (!('code' in created) || created.code !== 'EIO')
      problems.push(
        `D5, D11: a CREATE reply with FOPEN_PASSTHROUGH|FOPEN_NONSEEKABLE gave ${'code' in created ? created.code : 'a working open'}, expected EIO`,
      );
    if (stays !== 'there') problems.push(`D11: the file of a refused CREATE is gone (stat: ${stays}); the kernel keeps it`);
  });
  // D6: FOPEN_PASSTHROUGH on a connection without passthrough; a cached open of the same mount works
  await withReference({ args: ['--probe-open-replies', '--no-passthrough'], tree: treeOf(['plain', 'flags-80']) }, async (r) => {
    const plain = await openCase(r, 'plain');
    const pt = await openCase(r, 'flags-80');
    evidence.noPassthrough = { plain: `no FOPEN flags: ${plain}`, 'flags-80': `FOPEN_PASSTHROUGH naming id 1: ${pt}` };
    if (plain !== 'OK') problems.push(`D6 control: a cached open on a connection without passthrough gave ${plain}, expected a working open`);
    if (pt !== 'EIO') problems.push(`D6: FOPEN_PASSTHROUGH on a connection without passthrough gave ${pt === 'OK' ? 'a working open' : pt}, expected EIO`);
  });
  return problems.length
    ? { ok: false, detail: problems.join('; '), evidence }
    : {
        ok: true,
        detail: `EIO for ${REFUSED_OPEN_REPLIES.length} refused replies (NONSEEKABLE, CACHE_DIR, STREAM, bit 31 beside PASSTHROUGH; id 0, -1, unknown, closed), a refused CREATE (its file stays) and PASSTHROUGH without passthrough; PASSTHROUGH with NOFLUSH, PARALLEL_DIRECT_WRITES, DIRECT_IO opens`,
        evidence,
      };
}

/** The directory of D4 and the files of C4, H2 and F5 in PLT-009's mount. */
const PLT009_TREE: TreeSpec = {
  dirs: ['dir-passthrough'],
  files: [
    { path: 'dir-passthrough/a', size: 100, seed: 90 },
    { path: 'plain', size: 65536, seed: 91 },
    { path: 'flags-20', size: 16384, seed: 92 },
    { path: 'flags-1', size: 65536, seed: 93 },
  ],
  symlinks: [],
};

/** What ptfs replied to the window's first request of `opname` (reply tracer), or why that is unknown. */
function replyFlagsIn(win: EvidenceWindow<unknown>, opname: string): { flags: number; backingId: number } | string {
  const tl = win.timeline();
  if (!tl) return 'no reply tracer';
  const send = win.events.find((e) => e.kind === 'request_send' && e.opname === opname) as Extract<TraceEvent, { kind: 'request_send' }> | undefined;
  const out = send ? openOutOf(tl.byUnique.get(send.unique)) : null;
  return out ?? `no ${opname} reply recorded`;
}

async function plt009(): Promise<FactResult> {
  return withReference({ args: ['--probe-open-replies'], tree: PLT009_TREE, evidence: true, replies: true }, async (r) => {
    const ev = r.evidence;
    if (!ev) return { ok: null, detail: 'tracefs evidence unavailable', evidence: {} };
    const problems: string[] = [];
    const evidence: Record<string, unknown> = {};
    const n = (w: EvidenceWindow<unknown>, op: string) => countOf(w.requests, op);
    /** a reply the case relies on, checked where the tracer saw it */
    const replied = (w: EvidenceWindow<unknown>, opname: string, want: number, what: string) => {
      const got = replyFlagsIn(w, opname);
      if (typeof got === 'string') return `${what} (reply not seen: ${got})`;
      if ((got.flags & want) !== want)
        problems.push(`ptfs's ${opname} reply for ${what} had open_flags 0x${got.flags.toString(16)}, not 0x${want.toString(16)}: the case did not run`);
      return `${what} (reply open_flags 0x${got.flags.toString(16)}, backing id ${got.backingId})`;
    };

    // C4: the id is closed while its file is open (first passthrough open of the connection)
    const plain = r.path('plain');
    const w0 = await ev.window('C4 open', () => openAsync(plain, O.O_RDWR | O.O_CLOEXEC));
    const fd = w0.result;
    try {
      const seen = w0.ledger.ids();
      const noLedger = w0.ledger.opens.length === 0 && !!ev.ledgerUnavailable;
      // without a ledger (no syscall tracepoints, no tracer): ids count from 1 on each connection (B12)
      const id = seen.length === 1 ? seen[0]! : noLedger ? 1 : null;
      if (id === null) problems.push(`C4: ptfs's BACKING_OPEN for the open was not seen (ids in the window: ${seen.join(', ') || 'none'})`);
      else {
        const dev = await borrowDeviceFd(r.pids, r.connection);
        let closed: string;
        try {
          closed = await backingClose(dev, id);
        } finally {
          await closeAsync(dev);
        }
        const c4: Record<string, unknown> = { id: `${id}${seen.length ? '' : " (the connection's first id: no ledger here)"}`, backingClose: closed };
        evidence.closeWhileOpen = c4;
        if (closed !== 'OK') problems.push(`C4: BACKING_CLOSE of the open file's id ${id} gave ${closed}, expected success`);
        else {
          const data = Buffer.from('written after the id was closed\n');
          const wio = await ev.window('C4 I/O after BACKING_CLOSE', async () => {
            const buf = Buffer.alloc(4096);
            const got = await preadAsync(fd, buf, 8192);
            const put = await pwriteAsync(fd, data, 100);
            return { buf, got, put };
          });
          const backing = await readFile(r.backing('plain'));
          c4.io = `read ${wio.result.got} bytes, wrote ${wio.result.put}; FUSE_READ ${n(wio, 'FUSE_READ')}, FUSE_WRITE ${n(wio, 'FUSE_WRITE')}`;
          if (wio.result.got !== 4096 || !wio.result.buf.equals(backing.subarray(8192, 12288)))
            problems.push("C4: a read after BACKING_CLOSE of the open file's id returned wrong data");
          if (wio.result.put !== data.length || !backing.subarray(100, 100 + data.length).equals(data))
            problems.push("C4: a write after BACKING_CLOSE of the open file's id did not reach the backing file");
          if (n(wio, 'FUSE_READ') + n(wio, 'FUSE_WRITE') > 0) problems.push(`C4: after BACKING_CLOSE the open file's I/O went to the server (${c4.io})`);
          // the cost: ptfs still names the closed id in the next open's reply (C5: EIO)
          const second = await openErrno(plain, O.O_RDONLY);
          if ('fd' in second) await closeAsync(second.fd);
          c4.secondOpenNamingTheClosedId = 'code' in second ? second.code : 'OK';
          if (!('code' in second) || second.code !== 'EIO')
            problems.push(`C5: a second open whose reply names the closed id gave ${'code' in second ? second.code : 'a working open'}, expected EIO`);
        }
      }
    } finally {
      await closeAsync(fd);
    }
    await quiesce(r.connection);
    const reopened = await openCase(r, 'plain');
    evidence.reopenAfterClose = reopened;
    if (reopened !== 'OK') problems.push(`C4: after the file was closed, a new open (a new id) gave ${reopened}`);

    // D4: FOPEN_PASSTHROUGH in an OPENDIR reply is ignored
    const wd = await ev.window('D4 readdir of a directory opened with FOPEN_PASSTHROUGH', async () => {
      try {
        return await readdir(r.path('dir-passthrough'));
      } catch (e) {
        return errnoOf(e);
      }
    });
    const readdirs = n(wd, 'FUSE_READDIR') + n(wd, 'FUSE_READDIRPLUS');
    evidence.opendirPassthrough = `${replied(wd, 'FUSE_OPENDIR', FOPEN_PASSTHROUGH, 'OPENDIR')}: ${typeof wd.result === 'string' ? wd.result : `[${wd.result.join(', ')}]`}; FUSE_OPENDIR ${n(wd, 'FUSE_OPENDIR')}, FUSE_READDIR(PLUS) ${readdirs}`;
    if (typeof wd.result === 'string') problems.push(`D4: readdir of a directory whose OPENDIR reply set FOPEN_PASSTHROUGH failed with ${wd.result}`);
    else if (wd.result.join() !== 'a') problems.push(`D4: readdir of a directory opened with FOPEN_PASSTHROUGH listed [${wd.result.join(', ')}], expected [a]`);
    if (n(wd, 'FUSE_OPENDIR') === 0) problems.push('D4: the readdir sent no FUSE_OPENDIR');
    if (readdirs === 0) problems.push('D4: readdir of a directory opened with FOPEN_PASSTHROUGH sent no FUSE_READDIR/FUSE_READDIRPLUS to the server');

    // H2: close sends FUSE_FLUSH unless the reply set FOPEN_NOFLUSH
    const openClose = (rel: string) =>
      ev.window(`H2 open+close ${rel}`, async () => {
        const f = await openAsync(r.path(rel), O.O_RDONLY | O.O_CLOEXEC);
        await closeAsync(f);
      });
    const wn = await openClose('flags-20');
    const wp = await openClose('plain');
    evidence.flushOnClose = {
      noflush: `${replied(wn, 'FUSE_OPEN', FOPEN_PASSTHROUGH | FOPEN_NOFLUSH, 'PASSTHROUGH|NOFLUSH')}: FUSE_FLUSH ${n(wn, 'FUSE_FLUSH')}`,
      plain: `${replied(wp, 'FUSE_OPEN', FOPEN_PASSTHROUGH, 'PASSTHROUGH')}: FUSE_FLUSH ${n(wp, 'FUSE_FLUSH')}`,
    };
    if (n(wn, 'FUSE_OPEN') === 0 || n(wp, 'FUSE_OPEN') === 0) problems.push('H2: an open sent no FUSE_OPEN');
    if (n(wn, 'FUSE_FLUSH') > 0) problems.push(`H2: close of a file opened with FOPEN_PASSTHROUGH|FOPEN_NOFLUSH sent ${n(wn, 'FUSE_FLUSH')} FUSE_FLUSH`);
    if (n(wp, 'FUSE_FLUSH') === 0) problems.push('H2: close of a file opened with FOPEN_PASSTHROUGH alone sent no FUSE_FLUSH');

    // F5: DIRECT_IO|PASSTHROUGH: read and write go to the server, a shared mapping to the backing file
    const wo = await ev.window('F5 open', () => openAsync(r.path('flags-1'), O.O_RDWR | O.O_CLOEXEC));
    const fdd = wo.result;
    try {
      const want = await readFile(r.backing('flags-1'));
      const wr = await ev.window('F5 read', async () => {
        const buf = Buffer.alloc(4096);
        return { buf, got: await preadAsync(fdd, buf, 0) };
      });
      const data = Buffer.alloc(4096, 0x5a);
      const ww = await ev.window('F5 write', () => pwriteAsync(fdd, data, 16384));
      data.copy(want, 16384);
      const wm = await ev.window('F5 shared mapping', async () => {
        const map = await mmapAsync(fdd, 65536, PROT.PROT_READ, MAP.MAP_SHARED);
        try {
          return await map.readAsync(32768, 8192);
        } finally {
          map.munmap();
        }
      });
      evidence.directIoPassthrough = `${replied(wo, 'FUSE_OPEN', FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO, 'PASSTHROUGH|DIRECT_IO')}; read: FUSE_READ ${n(wr, 'FUSE_READ')}; write: FUSE_WRITE ${n(ww, 'FUSE_WRITE')}; shared mapping read: FUSE_READ ${n(wm, 'FUSE_READ')}`;
      if (wr.result.got !== 4096 || !wr.result.buf.equals(want.subarray(0, 4096)))
        problems.push('F5: a read of a DIRECT_IO|PASSTHROUGH file returned wrong data');
      if (n(wr, 'FUSE_READ') === 0) problems.push('F5: a read of a DIRECT_IO|PASSTHROUGH file sent no FUSE_READ (DIRECT_IO should take precedence)');
      if (ww.result !== 4096 || !(await readFile(r.backing('flags-1'))).subarray(16384, 20480).equals(data))
        problems.push('F5: a write to a DIRECT_IO|PASSTHROUGH file did not reach the backing file');
      if (n(ww, 'FUSE_WRITE') === 0) problems.push('F5: a write to a DIRECT_IO|PASSTHROUGH file sent no FUSE_WRITE (DIRECT_IO should take precedence)');
      if (!wm.result.equals(want.subarray(32768, 40960))) problems.push('F5: a shared mapping of a DIRECT_IO|PASSTHROUGH file read wrong data');
      if (n(wm, 'FUSE_READ') > 0)
        problems.push(`F5: reading a shared mapping of a DIRECT_IO|PASSTHROUGH file sent ${n(wm, 'FUSE_READ')} FUSE_READ (mmap should go to the backing file)`);
    } catch (e) {
      problems.push(`F5: a DIRECT_IO|PASSTHROUGH file: ${errnoOf(e)} (${(e as Error).message})`);
    } finally {
      await closeAsync(fdd);
    }
    return problems.length
      ? { ok: false, detail: problems.join('; '), evidence }
      : {
          ok: true,
          detail:
            'an id closed while its file is open: I/O still passthrough (the next open naming it EIO); FOPEN_PASSTHROUGH in OPENDIR ignored (READDIR sent); NOFLUSH: no FUSE_FLUSH at close; DIRECT_IO|PASSTHROUGH: read/write to the server, shared mapping to the backing file',
          evidence,
        };
  });
}

async function plt006(): Promise<FactResult> {
  const problems: string[] = [];
  const evidence: Record<string, unknown> = {};
  // depth 1 connection, source on an overlayfs: the server's BACKING_OPEN gets ELOOP, it falls back
  await withReference({ kind: 'overlay', evidence: true }, async (a) => {
    const depth1 = await probeStackDepth(a.pids, a.connection);
    evidence.depth1Overlay = depth1.result;
    if (depth1.result !== 'ELOOP') problems.push(`max_stack_depth 1: BACKING_OPEN of an overlayfs file gave ${depth1.result}, expected ELOOP`);
    const read = async () => readFile(a.path('f'));
    let data: Buffer;
    let win: EvidenceWindow<Buffer> | null = null;
    if (a.evidence) {
      win = await a.evidence.window('overlay read', async () => {
        const d = await read();
        await quiesce(a.connection);
        return d;
      });
      data = win.result;
    } else data = await read();
    if (!data.equals(await readFile(a.backing('f')))) problems.push('the fallback read of an overlayfs-backed file returned wrong data');
    if (win && a.evidence?.ledgerUnavailable) evidence.serverLedger = `unavailable: ${a.evidence.ledgerUnavailable}`;
    else if (win) {
      const failed = win.ledger.failedOpens().map((o) => o.code);
      evidence.serverLedger = win.ledger.summary();
      if (!failed.includes('ELOOP')) problems.push(`ptfs's BACKING_OPEN of an overlayfs file did not fail with ELOOP (ledger: ${win.ledger.summary()})`);
    }
    // depth 2 connection: the overlayfs file is accepted; a file on the depth-1 FUSE mount too
    await withReference({ args: ['--max-stack-depth', '2'] }, async (b) => {
      const depth2 = await probeStackDepth(b.pids, b.connection);
      evidence.depth2Overlay = depth2.result;
      if (depth2.depth !== 2) problems.push(`max_stack_depth 2: BACKING_OPEN of an overlayfs file gave ${depth2.result}, expected an id`);
      const onA = await probeBackingOpen(b.pids, b.connection, a.path('f'));
      evidence.depth2FileOnDepth1Fuse = onA;
      if (!onA.startsWith('id ')) problems.push(`max_stack_depth 2: BACKING_OPEN of a file on a depth-1 FUSE mount gave ${onA}, expected an id`);
      const onB = await probeBackingOpen(a.pids, a.connection, b.path('f'));
      evidence.depth1FileOnDepth2Fuse = onB;
      if (onB !== 'ELOOP') problems.push(`max_stack_depth 1: BACKING_OPEN of a file on a depth-2 FUSE passthrough mount gave ${onB}, expected ELOOP`);
      // A6: a depth-2 mount is as deep as a filesystem may stack, so overlayfs refuses it as a
      // layer (EINVAL); a depth-1 one it takes (the contrast, so the check can fail both ways)
      const overDepth2 = await overlayOver(b.ws.scratch, b.path());
      const overDepth1 = await overlayOver(a.ws.scratch, a.path());
      evidence.overlayOverDepth2Fuse = overDepth2;
      evidence.overlayOverDepth1Fuse = overDepth1;
      if (overDepth2 !== 'EINVAL') problems.push(`an overlayfs with a depth-2 FUSE passthrough mount as its lower layer gave ${overDepth2}, expected EINVAL`);
      if (overDepth1 !== 'OK') problems.push(`an overlayfs with a depth-1 FUSE passthrough mount as its lower layer gave ${overDepth1}, expected it mounted`);
    });
  });
  return problems.length
    ? { ok: false, detail: problems.join('; '), evidence }
    : {
        ok: true,
        detail:
          'ELOOP for backing files on stacked filesystems at depth 1; accepted at depth 2; overlayfs refuses a depth-2 FUSE mount as a layer (EINVAL), takes a depth-1 one',
        evidence,
      };
}

/** Mount an overlayfs with `lower` as its lower layer (upper and work under `scratch`), unmount it at once: 'OK' or the errno. */
async function overlayOver(scratch: string, lower: string): Promise<string> {
  const dir = path.join(scratch, `ovl-${process.pid}-${Date.now()}`);
  for (const d of ['upper', 'work', 'merged']) mkdirSync(path.join(dir, d), { recursive: true });
  const merged = path.join(dir, 'merged');
  try {
    await mountAsync('fusecert-ovl-probe', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${dir}/upper,workdir=${dir}/work`);
  } catch (e) {
    return errnoOf(e);
  }
  await umount2Async(merged, 0).catch(() => umount2Async(merged, MOUNT.MNT_DETACH).catch(() => {}));
  return 'OK';
}

async function plt007(): Promise<FactResult> {
  return withReference({ evidence: true }, async (r) => {
    if (!r.evidence) return { ok: null, detail: 'tracefs evidence unavailable', evidence: {} };
    const fh = await fsOpen(r.path('f'), 'r+');
    try {
      await stat(r.path('f'));
      const add = Buffer.alloc(1000, 7);
      const w1 = await r.evidence.window('passthrough write', async () => fh.write(add, 0, add.length, 65536));
      const win = await r.evidence.window('stat after write', async () => stat(r.path('f')));
      const getattr = countOf(win.requests, 'FUSE_GETATTR') + countOf(win.requests, 'FUSE_STATX');
      const evidence = { writeRequests: w1.requests.counts, statRequests: win.requests.counts, size: win.result.size };
      if (countOf(w1.requests, 'FUSE_WRITE') > 0) return { ok: false, detail: 'the write to a passthrough file was sent to ptfs as FUSE_WRITE', evidence };
      if (getattr === 0) return { ok: false, detail: `stat after a passthrough write sent no FUSE_GETATTR (size seen ${win.result.size})`, evidence };
      if (win.result.size !== 66536) return { ok: false, detail: `stat after a passthrough write: size ${win.result.size}, expected 66536`, evidence };
      return { ok: true, detail: `stat after a passthrough write sent ${getattr} FUSE_GETATTR and saw the new size`, evidence };
    } finally {
      await fh.close();
    }
  });
}

/**
 * F6: O_DIRECT reaches a passthrough file's backing file, so on a backing filesystem without
 * O_DIRECT (ramfs) an fd set to O_DIRECT with fcntl gets EINVAL from its reads and writes, while
 * a buffered fd of the same file works; an open with O_DIRECT fails EIO (the kernel's reopen of
 * the backing file fails, D9).
 */
async function plt010(): Promise<FactResult> {
  return withReference({ kind: 'ramfs' }, async (r) => {
    const evidence: Record<string, unknown> = {};
    const problems: string[] = [];
    const p = r.path('f');
    const fd = await openAsync(p, O.O_RDWR | O.O_CLOEXEC);
    try {
      const buf = Buffer.alloc(4096);
      evidence.bufferedRead = await preadAsync(fd, buf, 0).then((n) => `${n} bytes`, errnoOf);
      if (evidence.bufferedRead !== '4096 bytes')
        problems.push(`a buffered read of a ramfs-backed passthrough file gave ${evidence.bufferedRead}, expected 4096 bytes`);
      const fl = await fcntlAsync(fd, F.F_GETFL);
      evidence.setfl = await fcntlAsync(fd, F.F_SETFL, fl | O.O_DIRECT).then(() => 'OK', errnoOf);
      if (evidence.setfl !== 'OK')
        return { ok: null, detail: `fcntl(F_SETFL, O_DIRECT) on the FUSE file gave ${evidence.setfl}: the case cannot be made here`, evidence };
      const ab = alignedBuffer(4096);
      try {
        evidence.directRead = await preadAsync(fd, ab, 0).then((n) => `${n} bytes`, errnoOf);
        evidence.directWrite = await pwriteAsync(fd, ab, 0).then((n) => `${n} bytes`, errnoOf);
      } finally {
        ab.free();
      }
      for (const k of ['directRead', 'directWrite'])
        if (evidence[k] !== 'EINVAL')
          problems.push(
            `${k === 'directRead' ? 'a read' : 'a write'} after fcntl(F_SETFL, O_DIRECT) on a ramfs-backed passthrough file gave ${evidence[k]}, expected EINVAL`,
          );
    } finally {
      await closeAsync(fd);
    }
    const o = await openErrno(p, O.O_RDONLY | O.O_DIRECT);
    evidence.openODirect = 'code' in o ? o.code : 'OK';
    if ('fd' in o) await closeAsync(o.fd);
    if (evidence.openODirect !== 'EIO')
      problems.push(`an O_DIRECT open of a ramfs-backed passthrough file gave ${evidence.openODirect}, expected EIO (the backing file's reopen fails)`);
    return problems.length
      ? { ok: false, detail: problems.join('; '), evidence }
      : { ok: true, detail: 'ramfs backing file: O_DIRECT set by fcntl gives EINVAL to reads and writes, an O_DIRECT open EIO; buffered I/O works', evidence };
  });
}

/**
 * E7: a shared mmap of a DIRECT_IO file (ptfs answers O_DIRECT opens FOPEN_DIRECT_IO without
 * passthrough: no io mode) fails ENODEV unless FUSE_DIRECT_IO_ALLOW_MMAP was negotiated; with it
 * the mapping puts the inode in cached mode, so a passthrough open fails EIO until the mapping
 * and the file are gone; a private mapping works either way. Once the inode is in passthrough,
 * the shared mmap of a DIRECT_IO file is refused before that (ENODEV, E6).
 */
async function plt011(): Promise<FactResult> {
  const base = ['--defect', 'direct-io-for-o-direct'];
  const mapErrno = async (fd: number, flags: number) => {
    try {
      const m = await mmapAsync(fd, 4096, PROT.PROT_READ, flags);
      return { code: 'OK', m };
    } catch (e) {
      return { code: errnoOf(e), m: null };
    }
  };
  const [without, withFlag] = await Promise.all([
    withReference({ args: base }, async (r) => {
      const fd = await openAsync(r.path('f'), O.O_RDONLY | O.O_DIRECT | O.O_CLOEXEC);
      try {
        const shared = await mapErrno(fd, MAP.MAP_SHARED);
        shared.m?.munmap();
        const priv = await mapErrno(fd, MAP.MAP_PRIVATE);
        priv.m?.munmap();
        return { sharedMap: shared.code, privateMap: priv.code };
      } finally {
        await closeAsync(fd);
      }
    }),
    withReference({ args: [...base, '--direct-io-allow-mmap'] }, async (r) => {
      const out: Record<string, string> = {};
      const fd = await openAsync(r.path('f'), O.O_RDONLY | O.O_DIRECT | O.O_CLOEXEC);
      try {
        const shared = await mapErrno(fd, MAP.MAP_SHARED);
        out.sharedMap = shared.code;
        try {
          const pt = await openErrno(r.path('f'), O.O_RDONLY);
          out.passthroughOpenWhileMapped = 'code' in pt ? pt.code : 'OK';
          if ('fd' in pt) await closeAsync(pt.fd);
        } finally {
          shared.m?.munmap();
        }
      } finally {
        await closeAsync(fd);
      }
      await quiesce(r.connection);
      const again = await openErrno(r.path('f'), O.O_RDONLY);
      out.passthroughOpenAfter = 'code' in again ? again.code : 'OK';
      if ('fd' in again) await closeAsync(again.fd);
      await quiesce(r.connection);
      // a DIRECT_IO open first (no io mode), then a passthrough open beside it (E5): the shared
      // map of the DIRECT_IO fd is refused now the inode has a backing object (E6)
      const d = await openAsync(r.path('f'), O.O_RDONLY | O.O_DIRECT | O.O_CLOEXEC);
      try {
        const p2 = await openErrno(r.path('f'), O.O_RDONLY);
        out.passthroughOpenBesideDirectIo = 'code' in p2 ? p2.code : 'OK';
        if ('fd' in p2) {
          const m = await mapErrno(d, MAP.MAP_SHARED);
          m.m?.munmap();
          out.sharedMapWhilePassthrough = m.code;
          await closeAsync(p2.fd);
        }
      } finally {
        await closeAsync(d);
      }
      return out;
    }),
  ]);
  const evidence = { withoutAllowMmap: without, withAllowMmap: withFlag };
  const problems: string[] = [];
  const want = (what: string, got: string | undefined, exp: string) => {
    if (got !== exp) problems.push(`${what}: ${got ?? 'not reached'}, expected ${exp}`);
  };
  want('shared mmap of a DIRECT_IO file without DIRECT_IO_ALLOW_MMAP', without.sharedMap, 'ENODEV');
  want('private mmap of a DIRECT_IO file without DIRECT_IO_ALLOW_MMAP', without.privateMap, 'OK');
  want('shared mmap of a DIRECT_IO file with DIRECT_IO_ALLOW_MMAP', withFlag.sharedMap, 'OK');
  want('passthrough open while a DIRECT_IO file of the inode is mapped shared', withFlag.passthroughOpenWhileMapped, 'EIO');
  want('passthrough open after the mapping and the file are gone', withFlag.passthroughOpenAfter, 'OK');
  want('passthrough open beside an earlier DIRECT_IO open', withFlag.passthroughOpenBesideDirectIo, 'OK');
  want('shared mmap of a DIRECT_IO file while the inode is in passthrough', withFlag.sharedMapWhilePassthrough, 'ENODEV');
  return problems.length
    ? { ok: false, detail: problems.join('; '), evidence }
    : {
        ok: true,
        detail:
          'DIRECT_IO files: shared mmap ENODEV without DIRECT_IO_ALLOW_MMAP; with it the mapping takes cached mode (passthrough opens EIO until it goes); ENODEV once the inode is in passthrough',
        evidence,
      };
}

const FACTS: Record<FactId, () => Promise<FactResult>> = {
  'PLT-001': plt001,
  'PLT-002': plt002,
  'PLT-003': plt003,
  'PLT-004': plt004,
  'PLT-005': plt005,
  'PLT-006': plt006,
  'PLT-007': plt007,
  'PLT-008': plt008,
  'PLT-009': plt009,
  'PLT-010': plt010,
  'PLT-011': plt011,
};

const memo = new Map<FactId, Promise<FactResult>>();

/** Where a run's facts are cached: `ID.json` in its state dir (the context file's directory). */
export const factsDirOf = (stateDir: string): string => path.join(stateDir, 'facts');

const COULD_NOT_RUN = 'the check could not run';
/** A check that threw (a timeout under load): the run's mishap, not the kernel's answer. */
export const couldNotRun = (r: FactResult): boolean => r.detail.startsWith(COULD_NOT_RUN);

function cacheFile(id: FactId): string | null {
  const f = received().contextFile;
  return f ? path.join(factsDirOf(path.dirname(f)), `${id}.json`) : null;
}

/** Check a platform fact now (the PLT clauses), and cache it for the dependent clauses. */
export async function checkFact(id: FactId): Promise<FactResult> {
  let r: FactResult;
  try {
    r = await FACTS[id]();
  } catch (e) {
    r = { ok: false, detail: `${COULD_NOT_RUN}: ${(e as Error).message}`, evidence: {} };
  }
  const f = cacheFile(id);
  if (f) {
    try {
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(f, JSON.stringify(r));
    } catch {
      /* cache only */
    }
  }
  memo.set(id, Promise.resolve(r));
  return r;
}

/** A platform fact, from this run's cache or checked now. */
export function platformFact(id: FactId): Promise<FactResult> {
  let p = memo.get(id);
  if (!p) {
    const f = cacheFile(id);
    if (f && existsSync(f)) {
      try {
        p = Promise.resolve(JSON.parse(readFileSync(f, 'utf8')) as FactResult);
      } catch {
        p = undefined;
      }
    }
    if (!p) p = runContext().reference ? checkFact(id) : Promise.resolve({ ok: null, detail: 'the reference server is not built', evidence: {} });
    memo.set(id, p);
  }
  return p;
}
