import { describe, expect, test } from 'vitest';
import { CLAUSES, isClauseId } from './index.ts';
import { loadKernelRules, parseKernelRules, rulesOf } from './kernel-rules.ts';

// docs/kernel-rules.md is the project's account of the kernel's passthrough rules: this keeps it
// true to the catalogue as clauses are added, renamed or dropped.
const { rows, unruled, summary } = loadKernelRules();

describe('docs/kernel-rules.md', () => {
  test('has rows, each with a rule, a kernel location and a status', () => {
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(['C', 'P', 'N', 'NA'], r.id).toContain(r.status);
      expect(r.rule, r.id).not.toBe('');
      expect(r.kernel, r.id).not.toBe('');
      // the id is the section's letter and a number, as in the audit (A1, B4, ...)
      expect(r.id, r.section).toMatch(new RegExp(`^${r.section[0]}\\d+$`));
    }
  });

  test('row ids are unique', () => {
    const ids = rows.map((r) => r.id);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  test('every clause id a row names is in the catalogue', () => {
    const unknown = rows.flatMap((r) => r.clauses.filter((c) => !isClauseId(c)).map((c) => `${r.id}: ${c}`));
    expect(unknown).toEqual([]);
  });

  test('every catalogue clause is named by a row or listed as checking no rule, not both', () => {
    const named = new Set(rows.flatMap((r) => r.clauses));
    const listed = new Set(unruled.map((u) => u.id));
    expect(CLAUSES.filter((c) => !named.has(c.id) && !listed.has(c.id)).map((c) => c.id)).toEqual([]);
    expect([...listed].filter((id) => named.has(id))).toEqual([]);
    expect([...listed].filter((id) => !isClauseId(id))).toEqual([]);
    expect(unruled.length, 'a clause listed twice').toBe(listed.size);
    for (const u of unruled) expect(u.why, u.id).not.toBe('');
  });

  test('N, P and NA rows say why; C rows name a clause', () => {
    expect(rows.filter((r) => r.status !== 'C' && !r.note).map((r) => r.id)).toEqual([]);
    expect(rows.filter((r) => r.status === 'C' && r.clauses.length === 0).map((r) => r.id)).toEqual([]);
  });

  test("the summary line's counts are the rows'", () => {
    const m = /^Status: C (\d+), P (\d+), N (\d+), NA (\d+) \(of (\d+) rows\)\.$/.exec(summary);
    expect(m, summary).not.toBeNull();
    const count = (s: string) => rows.filter((r) => r.status === s).length;
    expect(m!.slice(1).map(Number)).toEqual([count('C'), count('P'), count('N'), count('NA'), rows.length]);
  });

  test('rulesOf gives the rows that name a clause', () => {
    expect(rulesOf('NEG-002')).toEqual(['A2', 'A3', 'A4', 'D12']);
    expect(rulesOf('PLT-004[second-backing-object]')).toEqual(rulesOf('PLT-004'));
    expect(rulesOf('PRF-001')).toEqual([]);
  });

  test('the parser refuses a malformed table instead of dropping rows', () => {
    const head = 'Status: C 1, P 0, N 0, NA 0 (of 1 rows).\n\n## A. x\n\n| # | rule | kernel | clauses | status | note |\n|---|---|---|---|---|---|\n';
    expect(parseKernelRules(`${head}| A1 | r \\| s | \`k.c:f\` | PLT-001, NEG-002 | C | |\n`).rows).toEqual([
      { id: 'A1', section: 'A. x', rule: 'r | s', kernel: 'k.c:f', clauses: ['PLT-001', 'NEG-002'], status: 'C', note: '' },
    ]);
    expect(() => parseKernelRules(`${head}| A1 | r | k | — | X | |\n`)).toThrow(/status "X"/);
    expect(() => parseKernelRules(`${head}| A1 | r | k | — | N |\n`)).toThrow(/5 cells/);
    expect(() => parseKernelRules(`## Clauses that check no kernel rule\n\n- RW-001 because\n`)).toThrow(/- ID: why/);
  });
});
