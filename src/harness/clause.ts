import { received } from '../runenv/index.ts';
import { test, type TestContext } from 'vitest';
import { clauseById, formatKey, type Clause, type ClauseKey, type Level } from '../catalogue/index.ts';
import { runContext, selected } from './context.ts';
import type { Mount } from './clause-mount.ts';
import { writeRepro, type ReproOp } from './repro.ts';
import { platformFact, type FactId } from './platform-facts.ts';
import path from 'node:path';
import { explainFailure, monoUs, type Diagnosable } from './diagnose.ts';
import { NO_FUSE_IO_URING } from '../platform/index.ts';

/**
 * What a clause may need; each unmet one becomes a structured skip. A PLT id is a platform fact
 * (src/harness/platform-facts.ts) the clause relies on: when the kernel does not honour it the
 * clause skips as `platform`, so the server is not blamed for the kernel.
 */
export type Requirement =
  | 'passthrough'
  | 'passthrough-data'
  | 'passthrough-reads'
  | 'passthrough-writes'
  | 'passthrough-rdwr'
  | 'mirror'
  | 'xattrs'
  | 'exec'
  | 'root'
  | 'tracefs'
  | 'ioctl-trace'
  | 'reference'
  | 'attr-timeout'
  | FactId;

/**
 * Why a clause did not run, as data: `not-applicable` (the server's claims or configuration: no
 * failure even under --strict), `environment` (no root, no tracefs, no reference server) or
 * `platform` (the kernel lacks or breaks a fact the clause relies on). The reason is for people;
 * verdicts never read it.
 */
export type SkipKind = 'not-applicable' | 'environment' | 'platform';
export interface Skip {
  kind: SkipKind;
  reason: string;
}

export interface ClauseMeta {
  /** formatKey(key): the results key as text */
  id: string;
  key: ClauseKey;
  family: string;
  level: string;
  title: string;
  param?: string;
  skip?: Skip;
  hung?: { deadlineMs: number; waiting: number | null; stacks: Record<string, string> };
  evidence: Record<string, unknown>;
  stderr?: string;
  replay?: string;
  /** A standalone reproducer written for this failure (harness/repro.ts). */
  repro?: string;
  /** ms from the test's start to its skip: vitest gives a skipped test no duration, and a skip may
   *  come after real work (PRF's figures-only skips measure for seconds) */
  skippedAfterMs?: number;
  /** a failure's timeline since the clause began: requests with the server's replies, backing calls */
  timeline?: string[];
  /** the rules the failure's diagnosis names (SPEC section; KERNEL-RULES row) */
  rules?: string[];
}

export class HungError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HungError';
  }
}

export interface ClauseContext {
  mount: Mount;
  clause: Clause;
  /** Record a fact in the clause's evidence (results.json, JUnit properties). */
  note(key: string, value: unknown): void;
  /** Skip with a structured reason (never a pass). */
  skip(kind: SkipKind, reason: string): never;
  /** A mount the clause built itself: a failure is diagnosed on its timeline (default: the clause's mount). */
  observe(o: Diagnosable): void;
  signal: AbortSignal;
}

/**
 * One clause as data: the id, level and title the catalogue lists (checked against it when the
 * suite loads, so the two cannot drift), what it requires, the mount it runs on, and its body.
 */
export interface ClauseDefinition {
  id: string;
  level: Level;
  title: string;
  requires?: Requirement[];
  mount?: Mount;
  deadlineMs?: number;
  /** What the clause does, as file operations a standalone script can replay (written on failure). */
  repro?: ReproOp[];
  body: (t: ClauseContext) => Promise<void>;
}

/** A clause with one JUnit testcase per parameter: `ID[name]`. */
export interface ClauseEachDefinition<P> extends Omit<ClauseDefinition, 'body' | 'repro'> {
  params: { name: string; value: P }[];
  repro?: (p: P) => ReproOp[];
  body: (t: ClauseContext, p: P) => Promise<void>;
}

const isFact = (r: Requirement): r is FactId => r.startsWith('PLT-');
/**
 * Requirements checked once the mount has started: tracefs and ioctl-trace need its evidence
 * state; platform facts come last, as the body's first step always did. The others (claims,
 * environment) are checked before it starts.
 */
const afterMount = (r: Requirement) => isFact(r) || r === 'tracefs' || r === 'ioctl-trace';

/** A platform fact the kernel does not honour, recorded in `evidence.platform` either way. */
async function unmetFact(f: FactId, evidence: Record<string, unknown>): Promise<Skip | null> {
  const r = await platformFact(f);
  const seen = (evidence.platform ??= {}) as Record<string, string>;
  seen[f] =
    (r.ok === true ? 'honoured' : r.ok === null ? `unchecked: ${r.detail}` : `FAILED: ${r.detail}`) +
    (r.from ? ` (checked for ${r.from} earlier in this run)` : '');
  return r.ok === false ? { kind: 'platform', reason: `platform: ${f} failed: ${r.detail}` } : null;
}

/** The definition agrees with the catalogue, or the suite does not load. */
export function checkDefinition(def: { id: string; level: Level; title: string }): Clause {
  const cl = clauseById(def.id);
  if (cl.level !== def.level || cl.title !== def.title) {
    throw new Error(
      `clause ${def.id} is defined as ${def.level} "${def.title}" but the catalogue (src/catalogue/index.ts) lists ${cl.level} "${cl.title}": change one of them`,
    );
  }
  return cl;
}

export function unmetRequirement(req: Exclude<Requirement, FactId>, mount: Mount | undefined): Skip | null {
  const na = (reason: string): Skip => ({ kind: 'not-applicable', reason });
  const env = (reason: string): Skip => ({ kind: 'environment', reason });
  const plat = (reason: string): Skip => ({ kind: 'platform', reason });
  const ctx = runContext();
  const p = ctx.platform;
  const claims = mount?.claims ?? ctx.server.claims;
  switch (req) {
    case 'passthrough':
      if (!claims.passthrough) return na('server does not claim passthrough');
      if (p.passthrough === 'n') return plat('kernel lacks CONFIG_FUSE_PASSTHROUGH');
      return null;
    case 'passthrough-data':
      return claims.directIo
        ? na('server does not claim a passthrough data path: it claims FOPEN_DIRECT_IO with passthrough (read and write go to the server by design, SPEC §4)')
        : null;
    case 'passthrough-reads':
    case 'passthrough-writes':
    case 'passthrough-rdwr': {
      const io = claims.passthroughIo ?? 'rw';
      const wanted = req === 'passthrough-reads' ? 'ro' : req === 'passthrough-writes' ? 'wo' : 'rw';
      if (io === 'rw' || io === wanted) return null;
      const opens = { 'passthrough-reads': 'O_RDONLY opens', 'passthrough-writes': 'O_WRONLY opens', 'passthrough-rdwr': 'O_RDWR opens' }[req];
      return na(
        `server claims passthrough for ${io === 'ro' ? 'O_RDONLY' : 'O_WRONLY'} opens only (claims.passthroughIo "${io}"): ${opens} may be served through the server`,
      );
    }
    case 'mirror':
      return claims.mirror ? null : na('server does not claim to mirror its source');
    case 'xattrs':
      return claims.xattrs ? null : na('server does not claim xattrs');
    case 'exec':
      return claims.exec ? null : na('server does not claim exec');
    case 'attr-timeout':
      return claims.attrTimeoutMs !== undefined ? null : na('manifest declares no attrTimeoutMs (claims.attrTimeoutMs)');
    case 'root':
      return p.root ? null : env('not root: mounting and tracefs need root');
    case 'tracefs':
      if (!p.tracefs) return env('tracefs unavailable: mount it (mount -t tracefs nodev /sys/kernel/tracing) and run as root');
      if (!p.fuseTracepoints) return plat('tracefs lacks fuse:fuse_request_send/end (Linux 6.12+)');
      if (mount?.evidenceError) return env(`evidence unavailable: ${mount.evidenceError}`);
      return null;
    case 'ioctl-trace':
      if (!p.syscallTracepoints) return plat('tracefs lacks syscalls:sys_enter_ioctl (CONFIG_FTRACE_SYSCALLS)');
      if (mount?.evidenceError) return env(`evidence unavailable: ${mount.evidenceError}`);
      return null;
    case 'reference':
      return ctx.reference ? null : env('the reference server is not built (fusecert build-ptfs, or npm run build in a checkout)');
  }
}

/** A mount whose claims name the io_uring transport on a kernel without FUSE over io_uring: platform. */
export function unmetTransport(mount: Mount | undefined): Skip | null {
  const ctx = runContext();
  const claims = mount?.claims ?? ctx.server.claims;
  if (claims.transport !== 'io_uring' || ctx.platform.fuseIoUring !== false) return null;
  return { kind: 'platform', reason: `${mount?.spec.name ?? ctx.server.name} claims transport io_uring, but ${NO_FUSE_IO_URING}` };
}

/**
 * FUSECERT_TEST_REWORD_SKIPS=1 (the self-test's, never a user's) rewrites every skip reason, so a
 * test can show that verdicts come from the skip's kind and never from its words.
 */
const rewordForTest = (reason: string) => (received().rewordSkips ? `reworded for a test: ${[...reason].reverse().join('')}` : reason);

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

/**
 * Declare clause ID. The vitest test is named `ID[param] title`; its meta carries the clause so
 * the reporter never parses names. Mount start failures, deadlines and skips are handled here.
 */
export function clause(def: ClauseDefinition): void {
  declare(def, undefined, def.body, def.repro);
}

/** One JUnit testcase per parameter: `ID[name]`. */
export function clauseEach<P>(def: ClauseEachDefinition<P>): void {
  for (const p of def.params) declare(def, p.name, (t) => def.body(t, p.value), def.repro?.(p.value));
}

function declare(
  opts: Omit<ClauseDefinition, 'body' | 'repro'>,
  param: string | undefined,
  body: ClauseDefinition['body'],
  repro: ReproOp[] | undefined,
): void {
  const cl = checkDefinition(opts);
  const id = cl.id;
  const variant = opts.mount?.variant;
  const key: ClauseKey = { id, ...(param ? { param } : {}), ...(variant ? { variant } : {}) };
  const fullId = formatKey(key);
  if (!selected(key)) return;
  const ctx = runContext();
  const deadlineMs = opts.deadlineMs ?? ctx.deadlineMs;
  // one clause at a time within its block (a variant's block may run beside another's: forEachVariant)
  test(`${fullId} ${cl.title}`, { timeout: deadlineMs + 30_000, concurrent: false }, async (vctx: TestContext) => {
    const meta: ClauseMeta = { id: fullId, key, family: cl.family, level: cl.level, title: cl.title, param, evidence: {} };
    meta.replay = ctx.replay.replace('{id}', shellQuote(fullId));
    (vctx.task.meta as Record<string, unknown>).fusecert = meta;
    const started = performance.now();
    const skip = (kind: SkipKind, reason: string): never => {
      meta.skip = { kind, reason: rewordForTest(reason) };
      meta.skippedAfterMs = performance.now() - started;
      vctx.skip(meta.skip.reason);
      throw new Error('unreachable');
    };
    const m = opts.mount;
    const requires = opts.requires ?? [];
    // every clause of a mount claiming the io_uring transport: on a kernel without it the server
    // would fall back to /dev/fuse and the clause would certify the wrong transport
    const transport = unmetTransport(m);
    if (transport) skip(transport.kind, transport.reason);
    for (const r of requires.filter((x) => !afterMount(x))) {
      const why = unmetRequirement(r as Exclude<Requirement, FactId>, m);
      if (why) skip(why.kind, why.reason);
    }
    if (m) await m.ensure();
    const after = requires.filter(afterMount);
    for (const r of [...after.filter((x) => !isFact(x)), ...after.filter(isFact)]) {
      const why = isFact(r) ? await unmetFact(r, meta.evidence) : unmetRequirement(r, m);
      if (why) skip(why.kind, why.reason);
    }
    const ac = new AbortController();
    let observed: Diagnosable | undefined = m;
    const t: ClauseContext = {
      observe: (o) => {
        observed = o;
      },
      mount: m as Mount,
      clause: cl,
      note: (k, v) => {
        meta.evidence[k] = v;
      },
      skip,
      signal: ac.signal,
    };
    let timer: NodeJS.Timeout | undefined;
    const since = monoUs();
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HungError('deadline')), deadlineMs);
    });
    try {
      await Promise.race([body(t), deadline]);
    } catch (e) {
      if (m?.server) meta.stderr = m.stderrTail(30);
      // what the server answered, read before a hung connection is aborted (the abort ends every request)
      let hungCause: string | undefined;
      if (e instanceof Error && meta.skip === undefined) {
        const story = await explainFailure(e, observed, since);
        if (story.excerpt.length) meta.timeline = story.excerpt;
        if (story.findings.length) meta.rules = [...new Set(story.findings.slice(0, 2).map((f) => f.rule))];
        if (!(e instanceof HungError)) e.message = story.message;
        else if (story.findings.length) hungCause = story.message.split(' — cause: ')[1];
      }
      if (e instanceof HungError && m?.server) {
        const state = m.server.kernelState();
        const aborted = m.server.abort();
        m.broken = true;
        ac.abort();
        meta.hung = { deadlineMs, ...state };
        throw new HungError(
          `HUNG: no result within ${deadlineMs} ms; ${state.waiting ?? '?'} request(s) waiting on connection ${m.server.connection}; ` +
            `${aborted ? 'connection aborted through fusectl' : 'fusectl abort failed'}; the next clause gets a fresh server${hungCause ? ` — cause: ${hungCause}` : ''}`,
        );
      }
      if (m?.server?.hasExited) m.broken = true;
      if (repro && e instanceof Error && !(e instanceof HungError) && meta.skip === undefined) {
        const file = writeRepro(ctx.outDir, { id: fullId, title: cl.title, server: m?.spec.name ?? ctx.server.name, reason: e.message }, repro);
        meta.repro = file;
        e.message += `; standalone reproducer: python3 ${path.relative(process.cwd(), file) || file} MOUNTPOINT`;
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  });
}
