// fixtures/defects.json: the reference server's defects, the clauses each must fail, and the
// pattern every such failure must match (it names the cause). Read by the self-test and by
// bench/diagnosis-score.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface DefectEntry {
  defect: string;
  bug: string;
  args: string[];
  families: string[];
  fails: string[];
  /** a pattern per clause id, or '*' for every clause the defect fails: the failure names the cause */
  cause: Record<string, string>;
  deadlineMs?: number;
  /** the defect breaks only SHOULD clauses: its run is made with --strict so that they fail it */
  strict?: boolean;
  /** the server never gets to the clauses: exit 2 with one error line matching this */
  environmentError?: string;
  /** claims of the defect's manifest over ptfs's own (e.g. transport io_uring) */
  claims?: Record<string, unknown>;
}

/** The `fusecert run` options a defect's run takes besides the server and its families. */
export const runOptions = (e: DefectEntry): string[] => ['--seed', '11', '--deadline', String(e.deadlineMs ?? 20000), ...(e.strict ? ['--strict'] : [])];

export function loadDefects(root = path.resolve(import.meta.dirname, '../..')): DefectEntry[] {
  return JSON.parse(readFileSync(path.join(root, 'fixtures/defects.json'), 'utf8')).defects as DefectEntry[];
}

/** The pattern a failure of clause `id` under this defect must match, if any. */
export function causeOf(e: DefectEntry, id: string): string | undefined {
  return e.cause[id] ?? e.cause['*'];
}
