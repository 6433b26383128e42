import path from 'node:path';
import { afterAll } from 'vitest';
import { resolveServer, type ServerSpec, type Claims } from '../manifest/index.ts';
import { makeWorkspace, ServerInstance, register, type Workspace, type SourceKind, type StopReport, type TreeSpec } from '../mount/index.ts';
import { EvidenceSession } from '../evidence/index.ts';
import { runContext } from './context.ts';

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
}

/** One server mounted on fresh directories; restarted when a clause leaves it broken. */
export class Mount {
  ws: Workspace | null = null;
  server: ServerInstance | null = null;
  evidence: EvidenceSession | null = null;
  evidenceError: string | null = null;
  broken = false;
  lastStop: StopReport | null = null;
  readonly spec: ServerSpec;

  constructor(readonly opts: MountOptions = {}) {
    const ctx = runContext();
    if (opts.reference) {
      if (!ctx.reference) throw new Error('the reference server (servers/ptfs) is not built: npm run build');
      this.spec = ctx.reference;
    } else this.spec = ctx.server;
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
    this.ws = await makeWorkspace({ tree: this.opts.tree, kind: this.opts.kind, sizeMb: this.opts.sizeMb ?? this.spec.manifest.sourceSizeMb });
    try {
      this.server = await ServerInstance.start(this.spec, this.ws.source, this.ws.mountpoint, this.opts.args ?? [], this.ws.scratch);
    } catch (e) {
      await this.ws.dispose();
      this.ws = null;
      throw e;
    }
    this.evidence = null;
    this.evidenceError = null;
    if (this.opts.evidence !== false) {
      try {
        this.evidence = await EvidenceSession.open({ connection: this.server.connection, pids: this.server.pids });
        const forget = register({ kind: 'tracefs', path: this.evidence.instancePath });
        const close = this.evidence.close.bind(this.evidence);
        this.evidence.close = async () => {
          await close();
          forget();
        };
      } catch (e) {
        this.evidenceError = (e as Error).message;
      }
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

/** A mount for the clauses of this file (or describe block): started on first use, stopped afterAll. */
export function useMount(opts: MountOptions = {}): Mount {
  const m = new Mount(opts);
  afterAll(async () => {
    await m.stop();
  }, 60_000);
  return m;
}
