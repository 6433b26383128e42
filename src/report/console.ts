import type { ClauseResult, Results, Status } from './results.ts';
import { isFailure } from './results.ts';

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const color = (code: number, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const STATUS: Record<Status, string> = {
  pass: color(32, 'PASS '),
  fail: color(31, 'FAIL '),
  skip: color(33, 'SKIP '),
  hung: color(35, 'HUNG '),
  xfail: color(36, 'XFAIL'),
  xpass: color(31, 'XPASS'),
};

/** `more`: suite files not collected yet, so the total will still grow (shown as `n/total+`). */
export function progressLine(n: number, total: number | null, r: ClauseResult, more = false): string {
  const count = total ? `${String(n).padStart(String(total).length)}/${total}${more ? '+' : ''}` : String(n);
  const why = r.status === 'pass' ? '' : `  ${r.reason.split('\n')[0].slice(0, 160)}`;
  return `[${count}] ${STATUS[r.status]} ${r.id} ${r.title} (${Math.round(r.durationMs)} ms)${why}`;
}

export function summaryTable(res: Results, strict: boolean): string {
  const fams = [...new Set(res.clauses.map((c) => c.family))];
  const cols: Status[] = ['pass', 'fail', 'hung', 'skip', 'xfail', 'xpass'];
  const lines = [`${'family'.padEnd(8)}${cols.map((c) => c.padStart(7)).join('')}`];
  for (const f of fams) {
    const cs = res.clauses.filter((c) => c.family === f);
    lines.push(`${f.padEnd(8)}${cols.map((s) => String(cs.filter((c) => c.status === s).length).padStart(7)).join('')}`);
  }
  const bad = res.clauses.filter((c) => isFailure(c, strict));
  const warn = res.clauses.filter((c) => !isFailure(c, strict) && (c.status === 'fail' || c.status === 'hung' || c.status === 'xpass'));
  if (bad.length) {
    lines.push('', 'failures:');
    for (const c of bad) lines.push(`  ${c.status.toUpperCase()} [${c.level}] ${c.id}: ${c.reason.split('\n')[0]}`, ...(c.replay ? [`      replay: ${c.replay}`] : []));
  }
  if (warn.length) {
    lines.push('', 'warnings (SHOULD/INFO, or unexpected passes):');
    for (const c of warn) lines.push(`  ${c.status.toUpperCase()} [${c.level}] ${c.id}: ${c.reason.split('\n')[0]}`);
  }
  for (const e of res.errors) lines.push(`  ERROR ${e}`);
  const s = res.summary;
  lines.push(
    '',
    `${res.server.name}: ${s.pass} passed, ${s.fail} failed, ${s.hung} hung, ${s.skip} skipped, ${s.xfail} expected failures, ${s.xpass} unexpected passes ` +
      `(${(res.durationMs / 1000).toFixed(1)} s) -> ${s.exitCode === 0 ? 'CERTIFIED' : 'NOT CERTIFIED'}`,
  );
  return lines.join('\n');
}
