import { received, type GuestInfo } from '../runenv/index.ts';
import { covers, keyOf, parseKey, type ClauseKey } from '../catalogue/index.ts';
import type { Expectation } from '../manifest/index.ts';
import type { Platform } from '../platform/index.ts';
import type { BaselineComparison } from './baseline.ts';

export type Status = 'pass' | 'fail' | 'skip' | 'hung' | 'xfail' | 'xpass';

export interface ClauseResult {
  /** the key as text, ID[param]@variant */
  id: string;
  /** the key as data (absent in results files written before it: keyOf() reads the id then) */
  key?: ClauseKey;
  family: string;
  level: string;
  title: string;
  status: Status;
  reason: string;
  durationMs: number;
  evidence: Record<string, unknown>;
  stderr?: string;
  replay?: string;
  hung?: unknown;
  /** a failure's timeline since the clause began: requests with the server's replies, backing calls (reply evidence) */
  timeline?: string[];
  /** the rules the failure's diagnosis names (SPEC section; KERNEL-RULES row) */
  rules?: string[];
  /** Why a skip happened, as data (harness/clause.ts SkipKind); the reason is only for people. */
  skipKind?: 'not-applicable' | 'environment' | 'platform';
  /** skipKind === 'not-applicable': the clause does not apply to this server (claims, configuration). */
  notApplicable?: boolean;
  /** Set when a manifest expectation matched, or expired. */
  expectation?: { status: string; reason: string; expires: string; expired: boolean; match?: string; mismatched?: boolean };
}

export interface Results {
  tool: string;
  version: string;
  started: string;
  durationMs: number;
  /** Where the run's time went, in milliseconds: state, preflight, version, suites, cleanup (older results lack it). */
  phases?: Record<string, number>;
  /** replyEvidence: the BPF reply tracer ran (absent in results of older versions) */
  platform: {
    kernel: string;
    passthrough: string;
    root: boolean;
    tracefs: boolean;
    replyEvidence?: boolean;
    replyEvidenceReason?: string;
    /** the run ran inside a User-Mode Linux guest (`run --kernel uml:VERSION`): its kernel, how it was built, the host's release */
    guest?: GuestInfo;
  };
  server: { name: string; version: string; manifest: string; claims: Record<string, unknown> };
  options: { only: string[]; families: string[]; strict: boolean; seed: number; jobs: number; shuffle: boolean };
  clauses: ClauseResult[];
  /** Problems outside any clause (a suite that failed to load, an unhandled error, a left-over resource). */
  errors: string[];
  summary: Record<Status, number> & { total: number; mustFailures: number; exitCode: number };
  /** Set when the run was compared with an earlier run (--baseline); summary.exitCode is then its verdict. */
  baseline?: BaselineComparison;
}

/** `IOM-001` covers every `IOM-001[param]`; a variant is named explicitly (`ATT-006@no-passthrough`). */
export const expectationMatches = (e: Pick<Expectation, 'clause'>, r: { id: string; key?: ClauseKey }) => covers(parseKey(e.clause), keyOf(r));

/** Fold the manifest's known deviations into the results: xfail, xpass, expired. */
export function applyExpectations(results: ClauseResult[], expect: Expectation[], today = new Date()): ClauseResult[] {
  const day = today.toISOString().slice(0, 10);
  return results.map((r) => {
    // a clause may have several entries, one per known cause (`match`): the first whose pattern
    // the reason contains (or that has none) applies; when none does, the first, as a mismatch
    const all = expect.filter((x) => expectationMatches(x, r));
    const e = all.find((x) => !x.match || new RegExp(x.match).test(r.reason)) ?? all[0];
    if (!e) return r;
    const expired = e.expires < day;
    const out: ClauseResult = { ...r, expectation: { status: e.status, reason: e.reason, expires: e.expires, expired } };
    if (expired) {
      out.status = r.status === 'pass' ? 'pass' : 'fail';
      out.reason = `expectation expired on ${e.expires} (${e.reason}); ${r.reason || 'the clause now ' + r.status + 'es'}: renew or remove it in the manifest`;
      if (r.status === 'pass') out.reason = '';
      return out;
    }
    if (r.status === e.status || (e.status === 'fail' && r.status === 'hung')) {
      if (e.match && !new RegExp(e.match).test(r.reason)) {
        // the clause failed, but not for the cause its entry names: a second bug, not the known one
        out.reason = `${r.reason} [not the expected ${e.status}: the expect entr${all.length > 1 ? 'ies' : 'y'} for ${e.clause} name${all.length > 1 ? '' : 's'} ${all.map((x) => `/${x.match}/`).join(', ')}, which this reason does not contain (${e.reason})]`;
        out.expectation = { ...out.expectation!, match: e.match, mismatched: true };
        return out;
      }
      out.status = 'xfail';
      out.reason = `expected ${e.status}: ${e.reason} (was: ${r.reason})`;
    } else if (r.status === 'pass') {
      out.status = 'xpass';
      out.reason = `expected ${e.status} (${e.reason}) but it passed: remove the expectation`;
    }
    return out;
  });
}

/** Does this result fail the run? MUST failures and hangs always; expired entries; xpass and skips under --strict. */
export function isFailure(r: ClauseResult, strict: boolean): boolean {
  if (r.expectation?.expired && r.status !== 'pass') return true;
  if (r.status === 'fail' || r.status === 'hung') return r.level === 'MUST' || (strict && r.level !== 'INFO');
  if (strict && (r.status === 'xpass' || (r.status === 'skip' && !r.notApplicable))) return true;
  return false;
}

export function summarise(clauses: ClauseResult[], strict: boolean, errors: string[]): Results['summary'] {
  const s = { pass: 0, fail: 0, skip: 0, hung: 0, xfail: 0, xpass: 0 } as Record<Status, number>;
  for (const c of clauses) s[c.status]++;
  const mustFailures = clauses.filter((c) => isFailure(c, strict)).length;
  return { ...s, total: clauses.length, mustFailures, exitCode: mustFailures > 0 || errors.length > 0 ? 1 : 0 };
}

export function platformSummary(p: Platform): Results['platform'] {
  return {
    kernel: p.kernel,
    passthrough: p.passthrough,
    root: p.root,
    tracefs: p.tracefs && p.fuseTracepoints,
    replyEvidence: p.replyEvidence,
    ...(p.replyEvidenceReason ? { replyEvidenceReason: p.replyEvidenceReason } : {}),
    ...(received().guest ? { guest: received().guest! } : {}),
  };
}

/** "6.12.118 (UML guest on 6.18.44)" or the host's release as it is. */
export function kernelLabel(p: Pick<Results['platform'], 'kernel' | 'guest'> | undefined): string {
  if (!p) return '?';
  return p.guest ? `${p.kernel} (UML guest on ${p.guest.host})` : p.kernel;
}
