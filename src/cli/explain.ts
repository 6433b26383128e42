// `fusecert explain RESULTS.json ID`: one failure's story for a server author: what the clause
// did, what the user saw, what the server answered and what the kernel made of it (the timeline),
// the rule it broke, and how to reproduce it.
import { clauseById, keyOf } from '../catalogue/index.ts';
import type { ClauseResult, Results } from '../report/results.ts';

const CAUSE = ' — cause: ';

/** The results an id names: the exact key (ID[param]@variant), else every result of the clause id. */
export function matchingResults(res: Results, id: string): ClauseResult[] {
  const exact = res.clauses.filter((c) => c.id === id);
  if (exact.length) return exact;
  return res.clauses.filter((c) => keyOf(c).id === id);
}

export function explainText(res: Results, c: ClauseResult): string {
  const out: string[] = [];
  let title = c.title;
  let observes = '';
  try {
    const cl = clauseById(keyOf(c).id);
    title = cl.title;
    observes = cl.observes ?? '';
  } catch {
    /* a clause of another version */
  }
  out.push(`${c.id} [${c.level}] ${title}`);
  out.push(
    `server: ${res.server.name} ${res.server.version} on Linux ${res.platform.kernel}; status ${c.status.toUpperCase()}${c.expectation?.mismatched ? ` (not as its expect entry says: /${c.expectation.match}/ is not in the reason; the entry: ${c.expectation.reason})` : c.expectation ? ` (expected: ${c.expectation.reason})` : ''}`,
  );
  if (observes) out.push(`what it observes: ${observes}`);
  if (c.status === 'pass' || c.status === 'skip') {
    out.push(c.status === 'skip' ? `skipped: ${c.reason}` : 'it passed: nothing to explain');
    return out.join('\n');
  }
  const [saw, ...cause] = c.reason.replace(/; standalone reproducer: .*$/, '').split(CAUSE);
  out.push('', `what the user saw: ${saw}`);
  if (cause.length) out.push('', `what the server did: ${cause.join(CAUSE)}`);
  else if (res.platform.replyEvidence === false)
    out.push('', `what the server did: unknown: the run had no reply evidence (${res.platform.replyEvidenceReason ?? 'BPF tracer unavailable'})`);
  else out.push('', 'what the server did: the timeline shows no reply or backing call that breaks a rule; read it below');
  if (c.rules?.length) out.push(`rule: ${c.rules.join('; ')} (SPEC.md sections; KERNEL-RULES rows)`);
  if (c.timeline?.length)
    out.push(
      '',
      'timeline since the clause began (requests the kernel sent, replies the server wrote and the kernel took, backing ioctls):',
      ...c.timeline.map((l) => `  ${l}`),
    );
  if (c.stderr?.trim())
    out.push(
      '',
      "the server's stderr (last lines):",
      ...c.stderr
        .trim()
        .split('\n')
        .slice(-10)
        .map((l) => `  ${l}`),
    );
  const repro = /standalone reproducer: (.*)$/.exec(c.reason)?.[1];
  out.push('', 'reproduce:');
  if (c.replay) out.push(`  ${c.replay}`);
  if (repro) out.push(`  ${repro}`);
  return out.join('\n');
}
