// The catalogue (index.ts, what `fusecert clauses` prints) and the clause definitions in suites/
// cannot drift: every definition's level and title are the catalogue's (clause() also refuses a
// mismatch when a suite loads), every catalogue clause is defined exactly once, in its family's
// suite, and nothing is defined that the catalogue lacks. Read from the suites' syntax tree, so no
// mount is needed.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CLAUSES, FAMILIES, isClauseId } from './index.ts';

const SUITES = path.resolve(import.meta.dirname, '../../suites');

interface Found {
  id: string;
  level?: string;
  title?: string;
  file: string;
}

/** Object literals with a string `id` that names a clause: clause() and clauseEach() definitions. */
function definitionsIn(file: string): Found[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Found[] = [];
  const str = (o: ts.ObjectLiteralExpression, name: string): string | undefined => {
    for (const p of o.properties) {
      if (ts.isPropertyAssignment(p) && p.name.getText(sf) === name && ts.isStringLiteralLike(p.initializer)) return p.initializer.text;
    }
    return undefined;
  };
  const visit = (n: ts.Node) => {
    if (ts.isObjectLiteralExpression(n)) {
      const id = str(n, 'id');
      if (id !== undefined && isClauseId(id)) out.push({ id, level: str(n, 'level'), title: str(n, 'title'), file: path.basename(file) });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const found = readdirSync(SUITES)
  .filter((f) => f.endsWith('.test.ts'))
  .flatMap((f) => definitionsIn(path.join(SUITES, f)));

describe('clause definitions in suites/ against the catalogue', () => {
  it('finds definitions at all (the scan itself works)', () => {
    expect(found.length).toBeGreaterThan(50);
  });

  it.each(CLAUSES.map((c) => [c.id, c] as const))('%s is defined once, in its family suite, with the catalogue level and title', (_id, c) => {
    const defs = found.filter((d) => d.id === c.id);
    expect(defs.map((d) => d.file)).toEqual([`${FAMILIES[c.family].suite}.test.ts`]);
    expect({ level: defs[0]!.level, title: defs[0]!.title }).toEqual({ level: c.level, title: c.title });
  });

  it('defines no clause the catalogue lacks', () => {
    const known = new Set(CLAUSES.map((c) => c.id));
    expect(found.filter((d) => !known.has(d.id))).toEqual([]);
  });
});
