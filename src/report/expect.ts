// `fusecert expect`: the manifest `expect` entries that turn a run's failures into expected ones,
// so a server with known deviations adopts fusecert in one command and then gates on what changes.
import { isFailure, expectationMatches, type Results } from './results.ts';
import type { Expectation } from '../manifest/index.ts';

/** How far out the placeholder expiry date is: long enough to fix or explain, short enough to be revisited. */
export const EXPECT_DAYS = 90;

/**
 * One entry per clause that fails the run (by the run's own rule and --strict), keyed as the
 * results key it (ID[param]@variant). The reason is a TODO carrying the failure, for the author to
 * replace with the why; an expired entry is carried over with its old reason.
 */
export function expectEntries(res: Results, today = new Date()): Expectation[] {
  const expires = new Date(today.getTime() + EXPECT_DAYS * 86_400_000).toISOString().slice(0, 10);
  const out: Expectation[] = [];
  for (const c of res.clauses) {
    if (!isFailure(c, res.options?.strict ?? false)) continue;
    const old = c.expectation?.expired ? c.expectation : null;
    const status = (old?.status ?? c.status) as Expectation['status'];
    if (status !== 'fail' && status !== 'hung' && status !== 'skip') continue; // an unexpected pass needs an entry removed, not added
    const why = (c.reason ?? '').split('\n')[0]!.replace(/\s+/g, ' ').trim();
    const other = c.expectation?.mismatched ? c.expectation : null;
    const reason = old
      ? `TODO: renew or fix (was: ${old.reason})`
      : other
        ? `TODO: a cause the old entry (/${other.match}/: ${other.reason}) did not name: ${why}`
        : `TODO: ${why || `explain why ${c.id} ${status === 'skip' ? 'is skipped' : 'fails'}`}`;
    out.push({ clause: c.id, status, reason: reason.length > 300 ? reason.slice(0, 299) + '…' : reason, expires });
  }
  return out;
}

/**
 * A manifest (as parsed JSON) with the entries merged into its expect list: an existing entry that
 * covers one of the new clauses (same id, or the base id of a parameter) is replaced, unless it
 * names its cause (`match`) and has not expired; the others are kept.
 */
export function mergeExpect(
  manifest: Record<string, unknown>,
  entries: Expectation[],
  today = new Date(),
): { manifest: Record<string, unknown>; added: number; replaced: number } {
  const existing = Array.isArray(manifest.expect) ? (manifest.expect as Expectation[]) : [];
  const day = today.toISOString().slice(0, 10);
  // an unexpired entry with a `match` names one cause: a failure for another cause gets an entry of its own beside it
  const keep = (e: Expectation) => !!e.match && e.expires >= day;
  const kept = existing.filter((e) => keep(e) || !entries.some((n) => expectationMatches(e, { id: n.clause })));
  return { manifest: { ...manifest, expect: [...kept, ...entries] }, added: entries.length, replaced: existing.length - kept.length };
}
