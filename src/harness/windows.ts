// Evidence helpers for clauses: what the kernel asked the server (fuse tracepoints) and what the
// server did with backing ids (ioctl tracepoints), around one piece of a clause's workload.
import { connectionWaiting } from '../mount/index.ts';
import { countOf, type EvidenceWindow, type BackingLedger, type RequestSummary } from '../evidence/index.ts';
import type { EvidenceSession } from '../evidence/index.ts';
import { fail } from './expect.ts';
import { noOpenRequest, noOpenText, NO_OPEN_RULE } from '../diagnosis/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until the connection has no request in flight (RELEASE is sent in the background after
 * close() returns, and the server closes backing ids while handling it). Returns false when
 * requests are still waiting after `ms`.
 */
export async function quiesce(connection: number, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  let zeros = 0;
  while (Date.now() < until) {
    const w = connectionWaiting(connection);
    if (w === null) return true; // connection gone: nothing can be in flight
    zeros = w === 0 ? zeros + 1 : 0;
    if (zeros >= 3) return true;
    await sleep(zeros ? 2 : 5);
  }
  return false;
}

/** What the helpers need of a mount: a Mount, or a hand-built one (nested setups). */
export interface Observed {
  evidence: EvidenceSession | null;
  evidenceError?: string | null;
  connection: number;
  path(rel?: string): string;
}

/** Run fn inside an evidence window of the mount; the window ends once the connection is quiet. */
export async function requestsDuring<T>(mount: Observed, label: string, fn: () => Promise<T>, opts: { settle?: boolean } = {}): Promise<EvidenceWindow<T>> {
  const ev = mount.evidence;
  if (!ev) throw new Error(`evidence unavailable for ${label}: ${mount.evidenceError ?? 'no session'}`);
  return ev.window(label, async () => {
    const r = await fn();
    if (opts.settle !== false) await quiesce(mount.connection);
    return r;
  });
}

export function counts(s: RequestSummary, ops: string[]): string {
  return ops.map((o) => `${countOf(s, o)} ${o}`).join(', ');
}

/** Fail when the window holds any of `ops` (default FUSE_READ and FUSE_WRITE): the data went through the server. */
export function expectNoServerIO(win: EvidenceWindow, what: string, ops: string[] = ['FUSE_READ', 'FUSE_WRITE']): void {
  const seen = ops.filter((o) => countOf(win.requests, o) > 0);
  if (seen.length === 0) return;
  fail(`${what}: the kernel sent ${counts(win.requests, seen)} to the server, so the data did not pass through the backing file`);
}

/**
 * Why a window's reads or writes reached the server although the file should be in passthrough,
 * from what the window holds: a failed BACKING_OPEN, an OPEN answered ENOSYS (no_open), no OPEN
 * at all, an open reply without FOPEN_PASSTHROUGH, or an id that did not help.
 */
export function serverIoCause(win: EvidenceWindow): string {
  const failed = win.ledger.failedOpens();
  if (failed.length) return `the server's BACKING_OPEN failed with ${failed[0]!.code} and it served the open without passthrough`;
  // an OPEN answered ENOSYS, in the window or before it on this connection: in the finding's
  // words when the timeline has it (the failure then gets no second cause saying the same)
  const rec = (() => {
    const tl = win.timeline();
    return tl ? noOpenRequest(tl) : undefined;
  })();
  const inWindow = win.requests.errors.find((e) => e.opcode === 'FUSE_OPEN' && e.code === 'ENOSYS');
  const enosys = rec ?? inWindow;
  if (enosys) return `${noOpenText(enosys)} (${NO_OPEN_RULE})`;
  const opens = countOf(win.requests, 'FUSE_OPEN') + countOf(win.requests, 'FUSE_CREATE');
  if (opens === 0) return 'the fd was opened before this window, and that open was not answered with FOPEN_PASSTHROUGH (or its backing id did not take)';
  if (!win.ledger.opens.some((o) => o.ok)) return 'the server answered FUSE_OPEN without FOPEN_PASSTHROUGH (no BACKING_OPEN was made)';
  return 'a backing id was opened but the data still went to the server';
}

/** Failed BACKING_OPEN/CLOSE calls of a ledger, in words. */
export function ledgerFailures(l: BackingLedger): string[] {
  const out: string[] = [];
  for (const o of l.failedOpens()) out.push(`BACKING_OPEN failed with ${o.code} (thread ${o.tid})`);
  for (const c of l.failedCloses()) out.push(`BACKING_CLOSE failed with ${c.code}: ${c.meaning ?? ''} (thread ${c.tid})`);
  return out;
}

/** A short, contract-worded account of a window's ledger and requests for evidence notes. */
export function windowSummary(win: EvidenceWindow): Record<string, unknown> {
  return {
    requests: win.requests.counts,
    ledger: win.ledger.summary(),
    failedRequests: win.requests.errors.map((e) => `${e.opcode} ${e.code}`),
  };
}
