import { received } from '../runenv/index.ts';
import { test, type TestContext } from 'vitest';
import { clauseById, formatKey, type Clause, type ClauseKey } from '../catalogue/index.ts';
import { runContext, selected } from './context.ts';
import type { Mount } from './clause-mount.ts';
import { writeRepro, type ReproOp } from './repro.ts';
import path from 'node:path';

/** What a clause may need; each unmet one becomes a structured skip reason. */
export type Requirement = 'passthrough' | 'passthrough-data' | 'mirror' | 'xattrs' | 'exec' | 'root' | 'tracefs' | 'ioctl-trace' | 'reference' | 'attr-timeout';

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
  signal: AbortSignal;
}

export interface ClauseOptions {
  param?: string;
  requires?: Requirement[];
  mount?: Mount;
  deadlineMs?: number;
  /** What the clause does, as file operations a standalone script can replay (written on failure). */
  repro?: ReproOp[];
}

export function unmetRequirement(req: Requirement, mount: Mount | undefined): Skip | null {
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
export function clause(id: string, body: (t: ClauseContext) => Promise<void>, opts: ClauseOptions = {}): void {
  const cl = clauseById(id);
  const variant = opts.mount?.variant;
  const key: ClauseKey = { id, ...(opts.param ? { param: opts.param } : {}), ...(variant ? { variant } : {}) };
  const fullId = formatKey(key);
  if (!selected(key)) return;
  const ctx = runContext();
  const deadlineMs = opts.deadlineMs ?? ctx.deadlineMs;
  test(`${fullId} ${cl.title}`, { timeout: deadlineMs + 30_000 }, async (vctx: TestContext) => {
    const meta: ClauseMeta = { id: fullId, key, family: cl.family, level: cl.level, title: cl.title, param: opts.param, evidence: {} };
    meta.replay = ctx.replay.replace('{id}', shellQuote(fullId));
    (vctx.task.meta as Record<string, unknown>).fusecert = meta;
    const skip = (kind: SkipKind, reason: string): never => {
      meta.skip = { kind, reason: rewordForTest(reason) };
      vctx.skip(meta.skip.reason);
      throw new Error('unreachable');
    };
    const m = opts.mount;
    for (const r of opts.requires ?? []) {
      if (r === 'tracefs' || r === 'ioctl-trace') continue; // need the mount's evidence state: checked below
      const why = unmetRequirement(r, m);
      if (why) skip(why.kind, why.reason);
    }
    if (m) await m.ensure();
    for (const r of opts.requires ?? []) {
      if (r !== 'tracefs' && r !== 'ioctl-trace') continue;
      const why = unmetRequirement(r, m);
      if (why) skip(why.kind, why.reason);
    }
    const ac = new AbortController();
    const t: ClauseContext = {
      mount: m as Mount,
      clause: cl,
      note: (k, v) => {
        meta.evidence[k] = v;
      },
      skip,
      signal: ac.signal,
    };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HungError('deadline')), deadlineMs);
    });
    try {
      await Promise.race([body(t), deadline]);
    } catch (e) {
      if (m?.server) meta.stderr = m.stderrTail(30);
      if (e instanceof HungError && m?.server) {
        const state = m.server.kernelState();
        const aborted = m.server.abort();
        m.broken = true;
        ac.abort();
        meta.hung = { deadlineMs, ...state };
        throw new HungError(
          `HUNG: no result within ${deadlineMs} ms; ${state.waiting ?? '?'} request(s) waiting on connection ${m.server.connection}; ` +
            `${aborted ? 'connection aborted through fusectl' : 'fusectl abort failed'}; the next clause gets a fresh server`,
        );
      }
      if (m?.server?.hasExited) m.broken = true;
      if (opts.repro && e instanceof Error && !(e instanceof HungError) && meta.skip === undefined) {
        const file = writeRepro(ctx.outDir, { id: fullId, title: cl.title, server: m?.spec.name ?? ctx.server.name, reason: e.message }, opts.repro);
        meta.repro = file;
        e.message += `; standalone reproducer: python3 ${path.relative(process.cwd(), file) || file} MOUNTPOINT`;
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  });
}

/** One JUnit testcase per parameter: `ID[name]`. */
export function clauseEach<P>(
  id: string,
  params: { name: string; value: P }[],
  body: (t: ClauseContext, p: P) => Promise<void>,
  opts: Omit<ClauseOptions, 'param' | 'repro'> & { repro?: (p: P) => ReproOp[] } = {},
): void {
  for (const p of params) clause(id, (t) => body(t, p.value), { ...opts, param: p.name, repro: opts.repro?.(p.value) });
}
