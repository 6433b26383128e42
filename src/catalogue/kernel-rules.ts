// docs/kernel-rules.md read back as data, so that a test can hold the table to the catalogue
// (every clause id it names exists, every clause is named or said to check no rule).
import { readFileSync } from 'node:fs';
import path from 'node:path';

export type RuleStatus = 'C' | 'P' | 'N' | 'NA';

export interface RuleRow {
  /** e.g. B4: the section letter and the row's number in it */
  id: string;
  /** the section heading, e.g. `A. Negotiation (fs/fuse/inode.c)` */
  section: string;
  rule: string;
  /** source locations, backticks removed */
  kernel: string;
  /** catalogue ids; empty for `—` */
  clauses: string[];
  status: RuleStatus;
  note: string;
}

export interface KernelRules {
  rows: RuleRow[];
  /** the catalogue clauses listed under "Clauses that check no kernel rule", each with its reason */
  unruled: { id: string; why: string }[];
  /** the `Status: C n, P n, N n, NA n (of n rows).` line, as written */
  summary: string;
}

const STATUSES: readonly string[] = ['C', 'P', 'N', 'NA'];
const UNRULED = 'Clauses that check no kernel rule';
const COLUMNS = ['#', 'rule', 'kernel', 'clauses', 'status', 'note'];

/** Cells of a table line; `\|` is a literal pipe inside a cell. */
function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** Parse the document's text; `file` only names it in errors. Malformed lines throw, so a bad edit cannot drop rows silently. */
export function parseKernelRules(text: string, file = 'docs/kernel-rules.md'): KernelRules {
  const rows: RuleRow[] = [];
  const unruled: { id: string; why: string }[] = [];
  let summary = '';
  // 'rules' under `## X. ...`, 'unruled' under the clause list, 'other' elsewhere (prose only)
  let mode: 'rules' | 'unruled' | 'other' = 'other';
  let section = '';
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    const where = `${file}:${i + 1}`;
    const heading = /^## (.+)$/.exec(line);
    if (heading) {
      section = heading[1];
      mode = /^[A-Z]\. /.test(section) ? 'rules' : section === UNRULED ? 'unruled' : 'other';
      return;
    }
    if (line.startsWith('Status: ')) {
      if (summary) throw new Error(`${where}: a second status line`);
      summary = line;
      return;
    }
    if (line.startsWith('|')) {
      if (mode !== 'rules') throw new Error(`${where}: a table row outside a rule section (## X. ...)`);
      const c = cells(line);
      if (c[0] === '#') {
        if (c.join('|') !== COLUMNS.join('|')) throw new Error(`${where}: columns must be ${COLUMNS.join(', ')}`);
        return;
      }
      if (c.every((x) => /^:?-+:?$/.test(x))) return;
      if (c.length !== COLUMNS.length) throw new Error(`${where}: ${c.length} cells, expected ${COLUMNS.length}`);
      const [id, rule, kernel, clauses, status, note] = c;
      if (!STATUSES.includes(status)) throw new Error(`${where}: status ${JSON.stringify(status)} is not C, P, N or NA`);
      rows.push({
        id,
        section,
        rule,
        kernel: kernel.replace(/`/g, ''),
        clauses:
          clauses === '—' || clauses === ''
            ? []
            : clauses
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean),
        status: status as RuleStatus,
        note,
      });
      return;
    }
    if (mode === 'unruled' && line.startsWith('- ')) {
      const m = /^- ([A-Z]{2,3}-\d{3}): (.+)$/.exec(line);
      if (!m) throw new Error(`${where}: expected \`- ID: why\``);
      unruled.push({ id: m[1], why: m[2].trim() });
    }
  });
  if (!summary) throw new Error(`${file}: no \`Status: ...\` line`);
  return { rows, unruled, summary };
}

/** The repository's table; `root` is the repository root (by default this checkout's). */
export function loadKernelRules(root?: string): KernelRules {
  const f = path.resolve(root ?? path.resolve(import.meta.dirname, '../..'), 'docs/kernel-rules.md');
  return parseKernelRules(readFileSync(f, 'utf8'), f);
}

let cached: KernelRules | undefined;

/** Ids of the rows that name a clause; a key such as `IOM-001[x]@variant` counts as its clause. */
export function rulesOf(clauseId: string): string[] {
  cached ??= loadKernelRules();
  const id = clauseId.replace(/[[@].*$/, '');
  return cached.rows.filter((r) => r.clauses.includes(id)).map((r) => r.id);
}
