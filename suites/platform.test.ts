// PLT: the kernel this run is on honours the facts the other clauses rely on. Every check runs
// the reference server (ptfs) in a probe mode, whatever the server under test is; the results
// are cached for the dependent clauses (src/harness/platform-facts.ts).
import { clause, clauseEach, fail, type ClauseContext, type Requirement } from '../src/harness/index.ts';
import { checkFact, platformFact, IO_MODE_CONFLICTS, RELEASE_ORDER, type FactId } from '../src/harness/platform-facts.ts';

async function assertFact(t: ClauseContext, id: FactId): Promise<void> {
  const r = await checkFact(id);
  t.note('observed', r.detail);
  for (const [k, v] of Object.entries(r.evidence)) t.note(k, v);
  if (r.ok === null) t.skip('environment', r.detail); // the fact could not be checked here
  if (r.ok === false) fail(`the platform does not honour ${id}: ${r.detail}`);
}

// The facts checked as a whole: one clause each. PLT-004 (one testcase per conflict) follows.
const WHOLE = [
  {
    id: 'PLT-001',
    level: 'INFO',
    title: 'kernel offers FUSE_PASSTHROUGH in INIT and grants it only with max_stack_depth 1 or 2',
    requires: ['root', 'reference'],
  },
  {
    id: 'PLT-002',
    level: 'INFO',
    title: "BACKING_OPEN/CLOSE error codes and ids are those of SPEC §2 and the kernel's rules",
    requires: ['root', 'reference'],
  },
  { id: 'PLT-003', level: 'INFO', title: 'passthrough together with WRITEBACK_CACHE is refused', requires: ['root', 'reference'] },
  { id: 'PLT-005', level: 'INFO', title: 'KEEP_CACHE with passthrough gives EIO', requires: ['root', 'reference'] },
  { id: 'PLT-006', level: 'INFO', title: 'ELOOP for a backing file on a stacked filesystem', requires: ['root', 'reference'] },
  { id: 'PLT-007', level: 'INFO', title: 'stat after a passthrough write sends GETATTR', requires: ['root', 'reference', 'tracefs'] },
  { id: 'PLT-008', level: 'INFO', title: 'open replies the kernel refuses with passthrough give EIO', requires: ['root', 'reference'] },
  { id: 'PLT-009', level: 'INFO', title: 'what the kernel accepts or ignores beside passthrough', requires: ['root', 'reference', 'tracefs'] },
  { id: 'PLT-010', level: 'INFO', title: 'O_DIRECT on a backing filesystem without it: EINVAL for I/O, EIO for the open', requires: ['root', 'reference'] },
  {
    id: 'PLT-011',
    level: 'INFO',
    title: 'shared mmap of a DIRECT_IO file: ENODEV without DIRECT_IO_ALLOW_MMAP, cached mode with it',
    requires: ['root', 'reference'],
  },
] as const satisfies readonly { id: FactId; level: 'INFO'; title: string; requires: readonly Requirement[] }[];
for (const f of WHOLE) clause({ ...f, requires: [...f.requires], body: (t) => assertFact(t, f.id) });

// One testcase per conflict of SPEC §4; the fact is checked once for all of them.
clauseEach({
  id: 'PLT-004',
  level: 'INFO',
  title: 'each io-mode conflict of SPEC §4 gives EIO and leaves existing fds working',
  params: [
    ...IO_MODE_CONFLICTS.map((c) => ({ name: c.name, value: { name: c.name, rule: c.rule } })),
    { name: RELEASE_ORDER, value: { name: RELEASE_ORDER, rule: 'KERNEL-RULES E4 the backing object goes at the last close, before RELEASE' } },
  ],
  requires: ['root', 'reference'],
  body: async (t, c) => {
    const r = await platformFact('PLT-004');
    const part = r.evidence[c.name] as { ok: boolean | null; detail: string } | undefined;
    if (!part) fail(`the io-mode check did not run: ${r.detail}`);
    for (const [k, v] of Object.entries(part)) t.note(k, v);
    if (part.ok === null) t.skip('environment', part.detail);
    if (part.ok === false) fail(`the platform does not honour PLT-004 (${c.rule}): ${part.detail}`);
  },
});
