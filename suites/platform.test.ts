// PLT: the kernel this run is on honours the facts the other clauses rely on. Every check runs
// the reference server (ptfs) in a probe mode, whatever the server under test is; the results
// are cached for the dependent clauses (src/harness/platform-facts.ts).
import { clause, clauseEach, fail, type ClauseContext } from '../src/harness/index.ts';
import { checkFact, platformFact, IO_MODE_CONFLICTS, type FactId } from '../src/harness/platform-facts.ts';

async function assertFact(t: ClauseContext, id: FactId): Promise<void> {
  const r = await checkFact(id);
  t.note('observed', r.detail);
  for (const [k, v] of Object.entries(r.evidence)) t.note(k, v);
  if (r.ok === null) t.skip('environment', r.detail); // the fact could not be checked here
  if (r.ok === false) fail(`the platform does not honour ${id}: ${r.detail}`);
}

clause('PLT-001', (t) => assertFact(t, 'PLT-001'), { requires: ['root', 'reference'] });
clause('PLT-002', (t) => assertFact(t, 'PLT-002'), { requires: ['root', 'reference'] });
clause('PLT-003', (t) => assertFact(t, 'PLT-003'), { requires: ['root', 'reference'] });

// One testcase per conflict of SPEC §4; the fact is checked once for all of them.
clauseEach(
  'PLT-004',
  IO_MODE_CONFLICTS.map((c) => ({ name: c.name, value: c })),
  async (t, c) => {
    const r = await platformFact('PLT-004');
    const part = r.evidence[c.name] as { ok: boolean | null; detail: string } | undefined;
    if (!part) fail(`the io-mode check did not run: ${r.detail}`);
    for (const [k, v] of Object.entries(part)) t.note(k, v);
    if (part.ok === null) t.skip('environment', part.detail);
    if (part.ok === false) fail(`the platform does not honour PLT-004 (${c.rule}): ${part.detail}`);
  },
  { requires: ['root', 'reference'] },
);

clause('PLT-005', (t) => assertFact(t, 'PLT-005'), { requires: ['root', 'reference'] });
clause('PLT-006', (t) => assertFact(t, 'PLT-006'), { requires: ['root', 'reference'] });
clause('PLT-007', (t) => assertFact(t, 'PLT-007'), { requires: ['root', 'reference', 'tracefs'] });
