import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { resolveServer, type ServerSpec, type Claims } from '../manifest/index.ts';
import { makeWorkspace, ServerInstance, traceCleanup, type Workspace, type SourceKind, type StopReport, type TreeSpec } from '../mount/index.ts';
import { EvidenceSession } from '../evidence/index.ts';
import { startTracer } from './tracer.ts';
import { runContext } from './context.ts';

export { startTracer };

export interface MountOptions {
  /** Fixture tree under fixtures/trees (default 'basic'), an inline tree, or null for an empty source. */
  tree?: string | TreeSpec | null;
  kind?: SourceKind;
  /** Extra server arguments (probe modes and defects of the reference server). */
  args?: string[];
  /** Mount the reference server (PLT probes) instead of the server under test. */
  reference?: boolean;
  sizeMb?: number;
  /** Open a tracefs evidence session for the mount (default true when tracefs is usable). */
  evidence?: boolean;
  /** A variant of the server under test from its manifest's `variants` (e.g. no-passthrough). */
  variant?: string;
}

/** One server mounted on fresh directories; restarted when a clause leaves it broken. */
export class Mount {
  ws: Workspace | null = null;
  server: ServerInstance | null = null;
  evidence: EvidenceSession | null = null;
  evidenceError: string | null = null;
  /** why the session has no reply evidence (BPF), when it has none */
  repliesError: string | null = null;
  broken = false;
  lastStop: StopReport | null = null;
  readonly spec: ServerSpec;

  constructor(readonly opts: MountOptions = {}) {
    const ctx = runContext();
    if (opts.reference) {
      if (!ctx.reference) throw new Error('the reference server (servers/ptfs) is not built: fusecert build-ptfs, or npm run build in a checkout');
      this.spec = ctx.reference;
    } else if (opts.variant) {
      this.spec = resolveServer(ctx.server.manifest, ctx.server.file, opts.variant);
    } else this.spec = ctx.server;
  }

  get variant(): string | null {
    return this.opts.variant ?? null;
  }

  get claims(): Claims {
    return this.spec.claims;
  }
  get mountpoint(): string {
    return this.need().ws!.mountpoint;
  }
  get source(): string {
    return this.need().ws!.source;
  }
  get connection(): number {
    return this.need().server!.connection;
  }
  path(rel = ''): string {
    return path.join(this.mountpoint, rel);
  }
  backing(rel = ''): string {
    return path.join(this.source, rel);
  }
  private need(): this {
    if (!this.server || !this.ws) throw new Error('mount not started (clauses start it; call mount.ensure() in custom code)');
    return this;
  }

  async ensure(): Promise<void> {
    if (this.server && !this.broken && !this.server.hasExited) return;
    if (this.server) await this.stop();
    await this.start();
  }

  async start(): Promise<void> {
    this.broken = false;
    this.evidence = null;
    this.evidenceError = null;
    this.repliesError = null;
    const want = this.opts.evidence !== false;
    // the reply tracer starts before the server, so the INIT reply is in its record; it loads while the workspace is made
    const tracing = want ? startTracer() : Promise.resolve({ tracer: null, error: 'evidence off for this mount' });
    try {
      this.ws = await makeWorkspace({ tree: this.opts.tree, kind: this.opts.kind, sizeMb: this.opts.sizeMb ?? this.spec.manifest.sourceSizeMb });
    } catch (e) {
      (await tracing).tracer?.close();
      throw e;
    }
    const { tracer, error } = await tracing;
    this.repliesError = error;
    try {
      this.server = await ServerInstance.start(this.spec, this.ws.source, this.ws.mountpoint, this.opts.args ?? [], this.ws.scratch);
    } catch (e) {
      tracer?.close();
      await this.ws.dispose();
      this.ws = null;
      throw e;
    }
    if (!want) return;
    try {
      if (tracer) await tracer.setConnection(this.server.connection, this.server.pids);
    } catch (e) {
      tracer?.close();
      this.repliesError = (e as Error).message;
    }
    try {
      const replies = tracer && !this.repliesError ? tracer : undefined;
      traceCleanup(`evidence open begin connection ${this.server.connection}`);
      this.evidence = await EvidenceSession.open({
        connection: this.server.connection,
        pids: this.server.pids,
        ...(replies ? { replies } : {}),
      });
      traceCleanup(() => `evidence open done ${this.evidence?.instancePaths.join(' ')}`);
    } catch (e) {
      tracer?.close();
      this.evidenceError = (e as Error).message;
    }
  }

  async stop(): Promise<StopReport | null> {
    let report: StopReport | null = null;
    try {
      if (this.evidence) await this.evidence.close().catch(() => {});
      if (this.server) report = await (this.broken ? this.server.kill() : this.server.stop());
    } finally {
      this.evidence = null;
      this.server = null;
      if (this.ws) await this.ws.dispose();
      this.ws = null;
    }
    this.lastStop = report;
    return report;
  }

  stderrTail(lines = 20): string {
    return this.server?.stderrTail(lines) ?? '';
  }
}

/**
 * The server under test as it is, plus each variant its manifest offers (e.g. passthrough
 * switched off), so one report shows both data paths. Clause ids of a variant end in @variant.
 */
export function forEachVariant(opts: MountOptions, fn: (mount: Mount, variant: string | null) => void, how: { sequential?: boolean } = {}): void {
  const ctx = runContext();
  const variants = ctx.server.variant ? [] : Object.keys(ctx.server.manifest.variants);
  for (const v of [null, ...variants]) {
    // Each variant is a block of its own, the blocks side by side: a variant's clauses run one
    // after the other on its own mount (and its own evidence session and reply tracer, which
    // see only that mount's connection), while another variant's clauses run on theirs. Much of
    // a clause is waiting (attribute timeouts, a child's start), and the variants' waits overlap.
    // The mount stops when its block ends. `sequential`: one block after the other (timings).
    const block = () => fn(useMount({ ...opts, variant: v ?? undefined }), v);
    if (how.sequential) describe(v ?? 'as it is', block);
    else sideBySide(v ?? 'as it is', block);
  }
}

/**
 * A block of clauses that runs beside the file's other sideBySide blocks (its own clauses one
 * after the other): for clauses on a mount of their own, which nothing else of the file touches.
 */
export function sideBySide(name: string, fn: () => void): void {
  describe(name, { concurrent: true }, fn);
}

/** A mount for the clauses of this file (or describe block): started on first use, stopped afterAll. */
export function useMount(opts: MountOptions = {}): Mount {
  const m = new Mount(opts);
  afterAll(async () => {
    await m.stop();
  }, 60_000);
  return m;
}
